/*
 * Stable LUN designators from a name: the serial number (VPD 0x80) and the
 * NAA designator (VPD 0x83) of a LUN must not change when its daemon or
 * provider restarts, and must differ between LUNs, so they are derived from
 * something that names the backing store (a canonical path, a provider
 * name, an image name), never from the host or the time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include <spt/scsi.h>

int spt_bdev_identity_from_name(struct spt_bdev *bdev, const char *name)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t h = 0;

	if (!EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL) || mdlen < 8)
		return -1;
	for (int i = 0; i < 8; i++)
		h = h << 8 | md[i];
	/* SPC-4 7.8.6.6.3: NAA 3h (locally assigned), 60 bits ours */
	bdev->naa = (0x3ULL << 60) | (h & ((1ULL << 60) - 1));
	snprintf(bdev->serial, sizeof(bdev->serial), "%016" PRIx64, h);
	return 0;
}
