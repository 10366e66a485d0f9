/* A process-wide gate in front of the guest's output to the outside world:
 * held frames and held disk writes are released, and frames pass straight
 * to the tap, only while it is open. Replication's arbiter
 * (migrate/arbiter_etcd.h) installs it: output leaves only while the
 * arbiter's lease is surely valid. Checked right before each frame or
 * write, so a process frozen between a commit's start and its end (SIGSTOP)
 * releases nothing more once it wakes past its lease. No gate: open. */
#ifndef FERRY_BACKEND_OUTPUT_GATE_H
#define FERRY_BACKEND_OUTPUT_GATE_H

#include <stdbool.h>

void output_gate_set(bool (*open)(void));
bool output_gate_open(void);

#endif
