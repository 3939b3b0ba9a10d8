"""Terminal output: plain-text tables and progress that suits a terminal or a log."""
import io

from pynas.ui import Progress, table


def test_table_aligns_columns_and_rules_the_header():
    text = table(["name", "ms"], [["a", "1.5"], ["longer name", "12.25"]], right={1})
    assert text.splitlines() == ["name            ms", "------------ -----", "a              1.5",
                                 "longer name  12.25"]
    assert table(["a", "b"], []).splitlines()[0] == "a  b"


def test_progress_in_a_log_prints_a_line_now_and_then():
    out = io.StringIO()
    bar = Progress(100, stream=out)
    for i in range(1, 101):
        bar.update(i, f"item {i}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("1/100 ") and lines[-1].startswith("100/100 ") and len(lines) == 2


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_draws_a_bar():
    out = _Terminal()
    with Progress(3, stream=out, description="profile") as bar:
        for i in range(1, 4):
            bar.update(i, "x")
    assert "3/3" in out.getvalue()


def test_table_cells_are_text_not_markup():
    # Regression: rich read "[dwconv+gemm]" in a kernel name as a markup tag and dropped it.
    out = table(["step", "[ms]"], [["mbconv[dwconv_c16__avx512f+gemm_8x32__avx512f] band9", "[bold]1.0"]])
    assert "mbconv[dwconv_c16__avx512f+gemm_8x32__avx512f] band9" in out and "[bold]1.0" in out and "[ms]" in out
