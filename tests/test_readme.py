"""The README's Python snippets run as written (in a scratch folder): no undefined names, no stale
APIs. The adb one needs a phone: it is compiled, its names checked, not run."""
import ast
import builtins
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README.read_text() if README.is_file() else "", re.S | re.M)
NEEDS_A_DEVICE = ("profile_over_adb",)


def undefined_names(code: str) -> set[str]:
    """Names a snippet loads that it never binds (imports, assignments, for and with targets)."""
    tree = ast.parse(code)
    bound, loaded = set(dir(builtins)), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
    return loaded - bound


@pytest.mark.skipif(not SNIPPETS, reason="no README in this tree (an installed package)")
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet(index, tmp_path, monkeypatch):
    code = SNIPPETS[index]
    assert not undefined_names(code), f"README snippet {index}: undefined {undefined_names(code)}"
    if any(name in code for name in NEEDS_A_DEVICE):
        compile(code, f"README snippet {index}", "exec")
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYNAS_DB", str(tmp_path / "m.sqlite"))
    exec(compile(code, f"README snippet {index}", "exec"), {"__name__": "readme"})
