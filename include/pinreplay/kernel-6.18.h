/*
 * The Linux 6.18 era of vfio_iommu_type1.c's pinning code, 6.18 to 7.x: num_pages_contiguous(), vpfn_pages(), has_rsvd, unpin_user_page_range_dirty_lock(), kzalloc_obj().
 * All of it is kernel-later.h; this file names the era.
 */
#ifndef PINREPLAY_KERNEL_6_18_H
#define PINREPLAY_KERNEL_6_18_H

#define PINREPLAY_KERNEL_API "6.18"
#define PINREPLAY_ERA 618

#include "kernel-later.h"

#endif /* PINREPLAY_KERNEL_6_18_H */
