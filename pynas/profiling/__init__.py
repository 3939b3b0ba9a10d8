"""Device profiling: what to measure (configs), how (backends, the C++ harness), where it goes
(pynas.store), and the on-device path without Python (pynas-profile, adb)."""
