#pragma once
// Preemption: a scheduler's notice that the job will be stopped soon (Slurm's
// `--signal=B:USR1@120`, a Kubernetes eviction's SIGTERM). A program that can save its work
// catches SIGTERM and SIGUSR1 from the moment it calls catch_preemption_signals(), looks at
// preemption_requested() where it can stop cleanly, and exits with kPreemptedExitStatus, which
// weftrun reads as "saved and stopped", never as a failure to restart from.
namespace weft {

// EX_TEMPFAIL of sysexits.h: a temporary condition, try again later (a requeue, a resume).
inline constexpr int kPreemptedExitStatus = 75;

// From now on SIGTERM and SIGUSR1 set the flag below instead of ending the process. Process-wide;
// calling it again is harmless.
void catch_preemption_signals();
// The first preemption signal received, 0 while none has been (async-signal-safe to read).
int preemption_signal();
inline bool preemption_requested() { return preemption_signal() != 0; }

}  // namespace weft
