/*
 * The buffer pool of src/util/bufpool.h for the fuzz builds: every buffer is
 * its own allocation of exactly the size asked for, so AddressSanitizer
 * reports a read or write one byte past it (the real pool rounds sizes up
 * to a power of two and recycles buffers, hiding both). A buffer returned
 * with a size other than the one it was obtained with is a bug the real
 * pool would turn into a corrupted free list: the harness aborts on it.
 */
#include "util/bufpool.h"

#include <stdio.h>
#include <stdlib.h>

/* the size is kept in front of the buffer; 16 keeps the buffer aligned as malloc's */
#define FUZZ_BUFPOOL_HEADER 16

struct bufpool {
	size_t live;		/* buffers handed out and not returned */
};

struct bufpool *bufpool_new(void)
{
	return calloc(1, sizeof(struct bufpool));
}

void bufpool_free(struct bufpool *bp)
{
	if (!bp)
		return;
	if (bp->live) {
		fprintf(stderr, "exact_bufpool: pool freed with %zu buffer(s) still out\n", bp->live);
		abort();
	}
	free(bp);
}

void *bufpool_get(struct bufpool *bp, size_t len)
{
	uint8_t *p;

	/* same limit as the real pool */
	if (len > ((size_t)1 << BUFPOOL_MAX_SHIFT))
		return NULL;
	p = malloc(FUZZ_BUFPOOL_HEADER + len);
	if (!p)
		return NULL;
	*(size_t *)(void *)p = len;
	bp->live++;
	return p + FUZZ_BUFPOOL_HEADER;
}

void bufpool_put(struct bufpool *bp, void *buf, size_t len)
{
	uint8_t *p;

	if (!buf)
		return;
	p = (uint8_t *)buf - FUZZ_BUFPOOL_HEADER;
	if (*(size_t *)(void *)p != len) {
		fprintf(stderr, "exact_bufpool: buffer of %zu bytes returned as %zu bytes\n",
			*(size_t *)(void *)p, len);
		abort();
	}
	bp->live--;
	free(p);
}
