/*
 * The Linux 5.15 era of vfio_iommu_type1.c's pinning code, 5.12 to 5.19: vaddr_get_pfns() over a vfio_batch, follow_pte(), pin_user_pages_remote() with vmas.
 * All of it is kernel-later.h; this file names the era.
 */
#ifndef PINREPLAY_KERNEL_5_15_H
#define PINREPLAY_KERNEL_5_15_H

#define PINREPLAY_KERNEL_API "5.15"
#define PINREPLAY_ERA 515

#include "kernel-later.h"

#endif /* PINREPLAY_KERNEL_5_15_H */
