"""Nothing under web/ imports the broker: a node reaches it only over the wire."""
import ast
import pathlib

WEB = pathlib.Path(__file__).resolve().parents[2] / "web"


def imported_modules(path):
    """Every module a Python file imports, absolute names (relative ones stay in web/)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_module_under_web_imports_broker():
    files = sorted(WEB.rglob("*.py"))
    assert len(files) > 20                     # the walk found the web tree
    offenders = [(str(path.relative_to(WEB)), name) for path in files
                 for name in imported_modules(path) if name == "broker" or name.startswith("broker.")]
    assert offenders == []


def test_the_walk_sees_an_import_of_broker(tmp_path):
    """The check above could fail: both spellings of an import are found."""
    sample = tmp_path / "sample.py"
    sample.write_text("import broker.server\nfrom broker import pair\nfrom .broker import x\n")
    assert list(imported_modules(sample)) == ["broker.server", "broker"]
