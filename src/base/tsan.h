/* Annotations for the ThreadSanitizer build (make tsan); no-ops elsewhere. */
#ifndef FERRY_BASE_TSAN_H
#define FERRY_BASE_TSAN_H

#if defined(__SANITIZE_THREAD__)
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
/* Brackets a bulk copy to or from guest RAM made for a device (DMA): TSan
 * neither checks nor records it. Devices and the guest order such accesses
 * through the virtqueue rings in guest memory (indexes, fences: the virtio
 * protocol), which TSan cannot see; and the harts' own accesses to guest
 * RAM are not instrumented either (GUEST_MEMORY_ACCESS, cpu_internal.h).
 * Guest RAM holds only the guest's data, never ferry's shared state. */
#define TSAN_GUEST_RAM_BEGIN()                                                \
    do {                                                                      \
        AnnotateIgnoreReadsBegin(__FILE__, __LINE__);                         \
        AnnotateIgnoreWritesBegin(__FILE__, __LINE__);                        \
    } while (0)
#define TSAN_GUEST_RAM_END()                                                  \
    do {                                                                      \
        AnnotateIgnoreWritesEnd(__FILE__, __LINE__);                          \
        AnnotateIgnoreReadsEnd(__FILE__, __LINE__);                           \
    } while (0)
#else
#define TSAN_GUEST_RAM_BEGIN() do { } while (0)
#define TSAN_GUEST_RAM_END() do { } while (0)
#endif

#endif
