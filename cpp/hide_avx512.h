// Hiding AVX-512 from CPUID, so that every library in this process that dispatches by CPUID (ONNX
// Runtime's MLAS, XNNPACK through cpuinfo, oneDNN and PyTorch, pynas itself) picks its AVX2 code.
// It lets one AVX-512 machine time all runtimes' AVX2 paths side by side (bench/kernels.py
// --hide-avx512); the core stays what it is (its caches, clock and FMA ports), so it is the AVX2
// code on this core, not an AVX2-only CPU.
#pragma once

namespace pynas {

// Makes CPUID fault in the calling thread and in every thread it starts afterwards (Linux CPUID
// faulting: arch_prctl(ARCH_SET_CPUID, 0); it ends at execve) and answers the faults with the real
// CPUID minus the AVX-512 feature bits (leaf 7). Threads that already exist keep the real CPUID, and
// libraries that detected their CPU earlier keep what they saw: call it first. A SIGSEGV that is not
// a CPUID goes to the handler installed before (Python's faulthandler, or the default). Idempotent.
// Throws std::runtime_error naming the cause where it cannot work (not x86-64 Linux; a CPU or kernel
// without CPUID faulting).
void hide_avx512_from_cpuid();

}  // namespace pynas
