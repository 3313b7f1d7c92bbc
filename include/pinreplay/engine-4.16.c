/*
 * The entry points of a 4.16-era C engine. pinreplay compiles one translation unit made of
 * the user's block of vfio_iommu_type1.c followed by this file, so these can call the
 * block's static functions: vfio_pin_pages_remote(), vfio_unpin_pages_remote(), and for the
 * external pin, which lies outside the block, vaddr_get_pfn(), is_invalid_reserved_pfn(),
 * vfio_lock_acct() and put_pfn().
 *
 * Each entry point makes the world current, runs the kernel function, and hands back
 * locked_vm. The cut counts the calls the cost model prices itself (its counting macros).
 */

#define PR_EXPORT __attribute__((visibility("default")))

static void pr_enter(struct pinreplay_world *w, struct vfio_dma *dma,
							       const struct pinreplay_dma *d)
{
	pr_world_enter(w);
	pr_mm.locked_vm = w->locked_vm;
	pr_task.mm = &pr_mm;
	disable_hugepages = w->disable_hugepages != 0;
	dma->iova = d->iova;
	dma->vaddr = d->vaddr;
	dma->size = d->size;
	dma->prot = d->prot;
	dma->iommu_mapped = false;
	dma->task = current;
	dma->pr_handle = d->handle;
}

static void pr_leave(struct pinreplay_world *w)
{
	w->locked_vm = pr_mm.locked_vm;
	pr_world_leave();
}

/* Which kernel's API this engine was built against. */
PR_EXPORT const char *pinreplay_kernel_api(void)
{
	return PINREPLAY_KERNEL_API;
}

/* 4.x has no batch: b is the later eras' and stays untouched. */
PR_EXPORT long pinreplay_vfio_pin_pages_remote(struct pinreplay_world *w, struct pinreplay_dma *d,
					       unsigned long vaddr, long npage, unsigned long *pfn_base,
					       int lock_cap, unsigned long limit, struct pinreplay_batch *b)
{
	struct vfio_dma dma = { 0 };
	long ret;

	(void)b;
	pr_enter(w, &dma, d);
	pr_load_world_pins(d);
	ret = vfio_pin_pages_remote(&dma, vaddr, npage, pfn_base, lock_cap != 0, limit);
	pr_leave(w);
	return ret;
}

PR_EXPORT long pinreplay_vfio_unpin_pages_remote(struct pinreplay_world *w, struct pinreplay_dma *d,
						 unsigned long long iova, unsigned long pfn, long npage,
						 int do_accounting)
{
	struct vfio_dma dma = { 0 };
	long ret;

	pr_enter(w, &dma, d);
	pr_load_world_pins(d);
	pr_puts.defer = 1;
	ret = vfio_unpin_pages_remote(&dma, iova, pfn, npage, do_accounting != 0);
	pr_puts.defer = 0;
	pr_flush_puts();
	pr_leave(w);
	return ret;
}

/* 4.16's vfio_pin_page_external(), which lies below the block: the block's vaddr_get_pfn() on
 * one page, charged to the task (not its caller) when asked. */
PR_EXPORT int pinreplay_vfio_pin_page_external(struct pinreplay_world *w, struct pinreplay_dma *d,
					       unsigned long vaddr, unsigned long *pfn_base, int do_accounting)
{
	struct vfio_dma dma = { 0 };
	struct mm_struct *mm;
	int ret;

	pr_enter(w, &dma, d);
	pr_forget_world_pins();
	pr_external = 1;
	mm = get_task_mm(dma.task);
	if (!mm) {
		ret = -ENODEV;
		goto out;
	}
	ret = vaddr_get_pfn(mm, vaddr, dma.prot, pfn_base);
	if (!ret && do_accounting && !is_invalid_reserved_pfn(*pfn_base)) {
		ret = vfio_lock_acct(dma.task, 1, NULL);
		if (ret)
			put_pfn(*pfn_base, dma.prot);
	}
	mmput(mm);
out:
	pr_external = 0;
	pr_leave(w);
	return ret;
}
