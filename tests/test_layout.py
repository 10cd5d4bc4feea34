"""The README's layout section names every module of the library and every benchmark."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layout_section():
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Layout"):text.index("## Development")]


def test_readme_layout_names_every_module():
    layout = _layout_section()
    words = set(re.findall(r"[a-z_]+", layout))
    modules = [p.stem for p in (ROOT / "meg_unet").glob("*.py") if not p.stem.startswith("_")]
    modules += [p.name for p in (ROOT / "meg_unet").iterdir()
                if p.is_dir() and (p / "__init__.py").is_file()]
    assert [m for m in modules if m not in words] == []
    benchmarks = [p.name for p in (ROOT / "benchmarks").glob("*.py")]
    assert [b for b in benchmarks if b not in layout] == []
    sections = [p.stem for p in (ROOT / "parameters").glob("*.py")
                if not p.stem.startswith("_") and p.stem != "profiles"]
    assert [s for s in sections if s not in words] == []
