/*
 * The Linux 6.1 era of vfio_iommu_type1.c's pinning code, 6.0 to 6.4: as 5.15 (follow_pte(), pin_user_pages_remote() with vmas); R/O pins unshare anonymous pages.
 * All of it is kernel-later.h; this file names the era.
 */
#ifndef PINREPLAY_KERNEL_6_1_H
#define PINREPLAY_KERNEL_6_1_H

#define PINREPLAY_KERNEL_API "6.1"
#define PINREPLAY_ERA 601

#include "kernel-later.h"

#endif /* PINREPLAY_KERNEL_6_1_H */
