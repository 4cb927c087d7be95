/*
 * Per-reactor data buffers in power-of-two size classes (4 KiB .. 16 MiB),
 * kept on free lists so the command path does not call malloc once warm.
 */
#ifndef UTIL_BUFPOOL_H
#define UTIL_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#define BUFPOOL_MIN_SHIFT 12
#define BUFPOOL_MAX_SHIFT 24
#define BUFPOOL_CLASSES (BUFPOOL_MAX_SHIFT - BUFPOOL_MIN_SHIFT + 1)
/* free buffers kept per class beyond which they go back to the system */
#define BUFPOOL_KEEP_BYTES (64u << 20)
/* ... and in all classes together: a daemon that once ran large I/O on
 * many sessions does not hold every class's worth for ever (QD 32 x
 * 1 MiB needs 32 MiB of one class) */
#define BUFPOOL_KEEP_TOTAL_BYTES (128u << 20)

struct bufpool;

struct bufpool *bufpool_new(void);
void bufpool_free(struct bufpool *bp);
/* A buffer of at least len bytes (len <= 1 << BUFPOOL_MAX_SHIFT), or NULL. */
void *bufpool_get(struct bufpool *bp, size_t len);
/* Returns a buffer obtained with the same len. */
void bufpool_put(struct bufpool *bp, void *buf, size_t len);

#endif
