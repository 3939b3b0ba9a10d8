"""Phones and boards have no torch: everything but the PyTorch builder must work without it."""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import importlib.abc, sys

    # Any `import torch` raises ImportError and torch is not in sys.modules, as on a board without it.
    # (Not sys.modules["torch"] = None: libraries that look for torch there, scipy's array API via
    # xgboost -> scikit-learn, would find None and fail where a board would not.)
    class NoTorch(importlib.abc.MetaPathFinder):

        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, NoTorch())
    import pynas, pynas.arch, pynas.presets, pynas.ir, pynas.space, pynas.cli, pynas.store, pynas.predictor.table
    assert pynas.store.this_device().logical_cores >= 1  # phones fingerprint themselves without torch
    from pynas.ir import fuse, lower
    from pynas.presets import preset
    graph = lower(preset("mnasnet-a1"))
    assert graph.params == 3887038 and len(fuse(graph, blocks=True)) == 20
    assert len(pynas.space.get_space("mnasnet").sample(3, seed=0)) == 3
    fbnet = pynas.space.get_space("fbnet", setting="cifar100").sample(2, seed=0)  # grouped blocks, id layers
    assert lower(fbnet[0]).macs > 0 and len(fuse(lower(fbnet[1]), blocks=True)) > 0
    import pynas.predictor.hwnasbench
    assert len(pynas.predictor.hwnasbench.block_keys(fbnet[0])) == 26
    assert pynas.cli.main(["describe", "mobilenetv2-1.0"]) == 0
    assert pynas.cli.main(["info"]) == 0
    import pynas.profiling.adb  # the desktop side of on-device profiling needs no torch either
    from pynas.profiling.oplist import network_entry, segment_entries, write_oplist
    assert write_oplist("a1.oplist", segment_entries("mnasnet-a1") + [network_entry("mnasnet-a1")]) == 15
    from pynas import predictor  # predictors load and predict on a board: no torch either
    assert predictor.load("pixel3").predict(pynas.space.get_space("fbnet").sample(1)[0]) > 0
    native = predictor.load("x86-avx512-native")
    assert native.predict("mnasnet-a1") > 0 and len(native.explain("mnasnet-a1")) == 19
    tokens = pynas.space.get_space("mnasnet").sample_tokens(100, seed=0)
    assert (native.predict_batch(tokens) > 0).all() and (native.batched(native.table.space).predict_batch(tokens) > 0).all()
    try:
        import pynas.torch_builder
    except ImportError:
        print("OK")
""")


def test_package_works_without_torch(tmp_path):
    # cwd elsewhere: from the repo root, `python -c` would import the source tree (no _core).
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=os.environ.copy(),
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")
