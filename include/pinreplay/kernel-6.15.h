/*
 * The Linux 6.15 era of vfio_iommu_type1.c's pinning code, 6.15 to 6.17: follow_pfnmap_start() with addr_mask; vaddr_get_pfns() fills the batch.
 * All of it is kernel-later.h; this file names the era.
 */
#ifndef PINREPLAY_KERNEL_6_15_H
#define PINREPLAY_KERNEL_6_15_H

#define PINREPLAY_KERNEL_API "6.15"
#define PINREPLAY_ERA 615

#include "kernel-later.h"

#endif /* PINREPLAY_KERNEL_6_15_H */
