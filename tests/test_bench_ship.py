"""bench/ship.py's own arithmetic and flags (its sections run for hours: the bench is run by hand)."""
import statistics

import pytest



@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("ship")


def test_the_paired_lead_is_the_mean_with_students_interval(bench):
    # mean 2, sd 1, n 3: t(0.975, 2) = 4.3027, half width 4.3027 / sqrt(3) = 2.484
    text = bench._paired([1.0, 2.0, 3.0])
    assert text.startswith("+2.00 points, 95% interval -0.48 .. +4.48 (ahead on 3 of 3 seeds: +1.00, +2.00, +3.00)")


def test_the_paired_lead_counts_the_seeds_behind(bench):
    gains = [0.5, -0.25, 0.0, 1.0]
    text = bench._paired(gains)
    assert f"{statistics.mean(gains):+.2f} points" in text
    assert "ahead on 2 of 4 seeds" in text  # a tie is not ahead


def test_one_seed_has_no_interval(bench):
    assert bench._paired([0.7]) == "+0.70 points (ahead on 1 of 1 seeds: +0.70)"


@pytest.mark.parametrize("value", ["0", "-1", "three", "2.5", ""])
def test_a_bad_seed_count_is_refused_naming_the_flag(bench, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit:
        bench.main(["--out", str(tmp_path / "out"), "--seeds", value, "--sections", "adapt"])
    assert exit.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--seeds" in error and "expected a count of seeds >= 1" in error
    assert not (tmp_path / "out").exists()  # refused before any work


def test_only_the_comparisons_take_seeds(bench):
    import inspect

    for section in bench.SECTIONS:
        takes = "seeds" in inspect.signature(bench.RUNNERS[section]).parameters
        assert takes == (section in bench.SEEDED), section
