/*
 * The Linux 6.12 era of vfio_iommu_type1.c's pinning code, 6.5 to 6.14: follow_pfnmap_start(), pin_user_pages_remote() without vmas.
 * All of it is kernel-later.h; this file names the era.
 */
#ifndef PINREPLAY_KERNEL_6_12_H
#define PINREPLAY_KERNEL_6_12_H

#define PINREPLAY_KERNEL_API "6.12"
#define PINREPLAY_ERA 612

#include "kernel-later.h"

#endif /* PINREPLAY_KERNEL_6_12_H */
