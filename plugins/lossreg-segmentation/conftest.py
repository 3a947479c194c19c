"""lossreg's pytest plugin is opt-in: this line gives the tests its fixtures and options
(``lossreg_backend``, ``lossreg_device``, ``lossreg_xp``, ``lossreg_conformance``,
``--lossreg-backend``)."""

pytest_plugins = ["lossreg.pytest_plugin"]
