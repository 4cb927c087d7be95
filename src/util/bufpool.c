#include "util/bufpool.h"

#include <stdlib.h>

struct bufpool_free {
	struct bufpool_free *next;
};

struct bufpool {
	struct bufpool_free *free[BUFPOOL_CLASSES];
	size_t kept[BUFPOOL_CLASSES];
	size_t kept_total;	/* sum of kept[] (BUFPOOL_KEEP_TOTAL_BYTES) */
};

static int bufpool_class(size_t len)
{
	int shift = BUFPOOL_MIN_SHIFT;

	while (((size_t)1 << shift) < len)
		shift++;
	return shift - BUFPOOL_MIN_SHIFT;
}

struct bufpool *bufpool_new(void)
{
	return calloc(1, sizeof(struct bufpool));
}

void bufpool_free(struct bufpool *bp)
{
	if (!bp)
		return;
	for (int c = 0; c < BUFPOOL_CLASSES; c++) {
		while (bp->free[c]) {
			struct bufpool_free *f = bp->free[c];

			bp->free[c] = f->next;
			free(f);
		}
	}
	free(bp);
}

void *bufpool_get(struct bufpool *bp, size_t len)
{
	if (len > ((size_t)1 << BUFPOOL_MAX_SHIFT))
		return NULL;
	int c = bufpool_class(len);
	struct bufpool_free *f = bp->free[c];

	if (f) {
		bp->free[c] = f->next;
		bp->kept[c] -= (size_t)1 << (c + BUFPOOL_MIN_SHIFT);
		bp->kept_total -= (size_t)1 << (c + BUFPOOL_MIN_SHIFT);
		return f;
	}
	void *p = NULL;

	if (posix_memalign(&p, 4096, (size_t)1 << (c + BUFPOOL_MIN_SHIFT)) != 0)
		return NULL;
	return p;
}

void bufpool_put(struct bufpool *bp, void *buf, size_t len)
{
	if (!buf)
		return;
	int c = bufpool_class(len);
	size_t sz = (size_t)1 << (c + BUFPOOL_MIN_SHIFT);

	if (bp->kept[c] + sz > BUFPOOL_KEEP_BYTES || bp->kept_total + sz > BUFPOOL_KEEP_TOTAL_BYTES) {
		free(buf);
		return;
	}
	struct bufpool_free *f = buf;

	f->next = bp->free[c];
	bp->free[c] = f;
	bp->kept[c] += sz;
	bp->kept_total += sz;
}
