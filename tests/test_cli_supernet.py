"""`pynas supernet train`: writes a file the evaluator takes; bad flags are one-line errors."""
import pytest

pytest.importorskip("torch")

from pynas.cli import main  # noqa: E402


def test_train_writes_a_supernet_file(tmp_path, capsys):
    from pynas.space import get_space
    from pynas.train.supernet import load_supernet

    out = tmp_path / "digits.pt"
    for sampling in ("sandwich", "fair", "progressive"):
        assert main(["supernet", "train", "--dataset", "digits", "--resolution", "16", "--epochs", "1",
                     "--train-images", "32", "--batch-size", "32", "--sampling", sampling, "--out", str(out)]) == 0
        assert f"search with --evaluator supernet:{out}" in capsys.readouterr().out
        _, meta = load_supernet(out, get_space("mnasnet", resolution=16, num_classes=10, in_channels=1))
        assert meta["dataset"] == "digits" and meta["train_images"] == 32 and meta["steps"] == 1
        assert meta["sampling"] == sampling


def test_the_flag_offers_the_trainers_samplings():
    from pynas.cli.supernet import SAMPLINGS as flag_choices
    from pynas.train.supernet import SAMPLINGS

    assert flag_choices == SAMPLINGS


@pytest.mark.parametrize("argv, message", [
    (["--space", "fbnet"], "--space: expected mnasnet"),
    (["--epochs", "0"], "argument --epochs: expected an integer 1..10000"),
    (["--train-images", "100000"], "--train-images: expected at most 1438"),
    (["--sampling", "fair", "--distill", ""], "--distill: expected only with --sampling sandwich or progressive"),
    (["--sampling", "spos"], "argument --sampling: invalid choice: 'spos' (choose from 'sandwich', 'fair', 'progressive')"),
])
def test_bad_flags(tmp_path, capsys, argv, message):
    args = {"--dataset": "digits", "--epochs": "1", "--out": str(tmp_path / "x.pt")}
    for flag, value in zip(argv[::2], argv[1::2]):
        args[flag] = value
    # A value "" stands for a flag without one (--distill).
    assert main(["supernet", "train", *[x for kv in args.items() for x in kv if x != ""]]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
