"""mkdocs hooks of the generated site (named in its mkdocs.yml)."""

from __future__ import annotations

import re
from typing import Any


def on_page_content(html: str, **kwargs: Any) -> str:
    """Docstrings' Sphinx roles (``:func:`name```), which mkdocstrings leaves as text, as plain code."""
    return re.sub(r":(?:func|class|meth|mod|attr|data|exc):(<code>[^<]*</code>)", r"\1", html)
