/*
 * The Linux 4.16 kernel API that the pinning block of drivers/vfio/vfio_iommu_type1.c uses
 * from outside itself (from vfio_lock_acct() through vfio_unpin_pages_remote()), under the
 * kernel's names and types, backed by pinreplay's simulated world (world.h). pinreplay
 * force-includes it when it compiles a C engine (`--engines ./my-patch.c`), so the block
 * compiles exactly as it stands in a kernel tree.
 *
 * The later eras (5.15 to 6.18) are kernel-later.h; both stand on kernel-common.h.
 */
#ifndef PINREPLAY_KERNEL_4_16_H
#define PINREPLAY_KERNEL_4_16_H

#include "kernel-common.h"

#define PINREPLAY_KERNEL_API "4.16"

/* Whether the call in progress is an external pin (its vaddr_get_pfn() walks no run). */
static int pr_external;

/* A vaddr_get_pfn() call; one of the walk is a step of it (pages_walked). */
PR_SHIM void pr_count_vaddr_get_pfn(int walk)
{
	pr_world->counts.vaddr_get_pfn++;
	if (walk && !pr_external)
		pr_world->counts.pages_walked++;
}

/* --- GUP ----------------------------------------------------------------------------------- */

/* The vm_area_struct of pr_gup_vma, handed out while it is known. */
static struct vm_area_struct pr_gup_vm_area;

/* GUP of nr_pages from start: how many were pinned, or the first page's -errno if none. A page
 * of the world's open run is served here (pr_run); any other goes to the world. */
PR_SHIM long pr_gup(unsigned long start, unsigned long nr_pages, unsigned int gup_flags,
		    struct page **pages, struct vm_area_struct **vmas)
{
	int write = !!(gup_flags & FOLL_WRITE);
	unsigned long i;

	for (i = 0; i < nr_pages; i++) {
		unsigned long vaddr = start + i * PAGE_SIZE, vpn = vaddr >> PAGE_SHIFT, pfn = 0;
		bool known = vaddr >= pr_gup_vma.start && vaddr < pr_gup_vma.end;

		if (pr_run.open && vpn == pr_run.vpn && vpn < pr_run.end && write == pr_run.write && known) {
			pfn = pr_run.pfn++;
			pr_run.vpn++;
			pr_run.taken++;
		} else {
			/* VMAs do not change within a call: the last one GUP went through is asked once. */
			long ret;

			pr_flush_puts();
			ret = pr_world->get_user_page(pr_world->host, vaddr, write, &pfn, !known ? &pr_gup_vma : 0);
			if (ret != 1)
				return i ? (long)i : ret;
			if (!known) {
				pr_gup_vm_area.vm_mm = &pr_mm;
				pr_gup_vm_area.vm_start = pr_gup_vma.start;
				pr_gup_vm_area.vm_end = pr_gup_vma.end;
				pr_gup_vm_area.vm_flags = pr_gup_vma.flags;
				pr_gup_vm_area.vm_pgoff = pr_gup_vma.pgoff;
			}
			pr_run.write = write;
			pr_run.open = pr_world->gup_run(pr_world->host, write, &pr_run.vpn, &pr_run.end, &pr_run.pfn);
		}
		if (pages)
			pages[i] = pfn_to_page(pfn);
		if (vmas)
			vmas[i] = &pr_gup_vm_area;
	}
	return (long)nr_pages;
}

PR_SHIM long get_user_pages_longterm(unsigned long start, unsigned long nr_pages, unsigned int gup_flags,
				     struct page **pages, struct vm_area_struct **vmas)
{
	return pr_gup(start, nr_pages, gup_flags, pages, vmas);
}

PR_SHIM long get_user_pages_remote(struct task_struct *tsk, struct mm_struct *mm, unsigned long start,
				   unsigned long nr_pages, unsigned int gup_flags, struct page **pages,
				   struct vm_area_struct **vmas, int *locked)
{
	(void)tsk;
	(void)mm;
	(void)locked;
	return pr_gup(start, nr_pages, gup_flags, pages, vmas);
}

PR_SHIM int get_user_pages_fast(unsigned long start, int nr_pages, int write, struct page **pages)
{
	return (int)pr_gup(start, (unsigned long)nr_pages, write ? FOLL_WRITE : 0, pages, 0);
}

/* --- vfio_iommu_type1.c above the block ------------------------------------------------------ */

static bool disable_hugepages;

struct vfio_dma {
	struct rb_node node;
	dma_addr_t iova;
	unsigned long vaddr;
	size_t size;
	int prot;
	bool iommu_mapped;
	struct task_struct *task;
	struct rb_root pfn_list;
	/* The container's dma, for vfio_find_vpfn(). */
	void *pr_handle;
};

struct vfio_pfn {
	struct rb_node node;
	dma_addr_t iova;
	unsigned long pfn;
	atomic_t ref_count;
};

/* Only whether there is one matters to the block: the same object stands for every pin. */
static struct vfio_pfn pr_vpfn;

PR_SHIM struct vfio_pfn *vfio_find_vpfn(struct vfio_dma *dma, dma_addr_t iova)
{
	const struct pinreplay_pin *pin = pr_find_world_pin(iova);
	(void)dma;
	if (!pin)
		return 0;
	pr_vpfn.iova = iova;
	pr_vpfn.pfn = pin->pfn;
	return &pr_vpfn;
}

#endif /* PINREPLAY_KERNEL_4_16_H */
