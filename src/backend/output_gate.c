/* The output gate (see output_gate.h). */
#include "backend/output_gate.h"

static bool (*gate)(void); /* atomic */

void output_gate_set(bool (*open)(void))
{
    __atomic_store_n(&gate, open, __ATOMIC_RELEASE);
}

bool output_gate_open(void)
{
    bool (*g)(void) = __atomic_load_n(&gate, __ATOMIC_ACQUIRE);
    return !g || g();
}
