/*
 * libspt internals shared with the unit tests: not part of the public API
 * of include/spt/provider.h.
 */
#ifndef LIBSPT_PROVIDER_INTERNAL_H
#define LIBSPT_PROVIDER_INTERNAL_H

#include <stddef.h>

#include <spt/provider.h>

/* Seconds the registration (connect, REGISTER, its answer) may take. */
#define PROVIDER_REGISTER_TIMEOUT_S 5

/*
 * spt_provider_connect() after the connect: registers as `name` over the
 * already connected stream socket fd (blocking, bounded by
 * PROVIDER_REGISTER_TIMEOUT_S) and takes fd over, closing it on failure.
 * Same results as spt_provider_connect().
 */
int provider_attach(int fd, const char *name, const struct spt_provider_ops *ops, void *lun_ctx,
		    struct spt_provider **out, char *err, size_t errlen);

/* Whether completions wait in the output buffer for the socket to drain:
 * a poll loop other than spt_provider_run() then also waits for POLLOUT. */
bool provider_output_pending(const struct spt_provider *p);

#endif
