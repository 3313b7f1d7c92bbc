// SPDX-License-Identifier: GPL-2.0-only
/*
 * pinreplay's own C rendering of the 6.18 pinning code of vfio_iommu_type1.c, written
 * from SPEC-LATER.md section 5.5 (not copied from a kernel tree), shaped as a whole file: the
 * container code around the pinning functions is there for the extractor to skip, and it
 * does not compile against pinreplay's headers. The tests compare it with the Swift v6.18.
 */

#include <linux/mm.h>
#include <linux/vfio.h>

struct vfio_iommu {
	struct list_head	domain_list;
	struct mutex		lock;
	struct rb_root		dma_list;
	unsigned int		dma_avail;
	wait_queue_head_t	vaddr_wait;
	bool			v2;
};

#define WAITED 1

static struct vfio_dma *vfio_find_dma(struct vfio_iommu *iommu,
				      dma_addr_t start, size_t size)
{
	struct rb_node *node = iommu->dma_list.rb_node;

	while (node) {
		struct vfio_dma *dma = rb_entry(node, struct vfio_dma, node);

		if (start + size <= dma->iova)
			node = node->rb_left;
		else if (start >= dma->iova + dma->size)
			node = node->rb_right;
		else
			return dma;
	}
	return NULL;
}

/* The highest external pin in [iova_start, iova_end), by a walk of dma->pfn_list. */
static struct vfio_pfn *vfio_find_vpfn_range(struct vfio_dma *dma,
		dma_addr_t iova_start, dma_addr_t iova_end)
{
	struct rb_node *node = dma->pfn_list.rb_node;

	while (node) {
		struct vfio_pfn *vpfn = rb_entry(node, struct vfio_pfn, node);

		if (iova_end <= vpfn->iova)
			node = node->rb_left;
		else if (iova_start > vpfn->iova)
			node = node->rb_right;
		else
			return vpfn;
	}
	return NULL;
}

static inline struct vfio_pfn *vfio_find_vpfn(struct vfio_dma *dma, dma_addr_t iova)
{
	return vfio_find_vpfn_range(dma, iova, iova + PAGE_SIZE);
}

static int mm_lock_acct(struct task_struct *task, struct mm_struct *mm,
			bool lock_cap, long npage)
{
	int ret = mmap_write_lock_killable(mm);

	if (ret)
		return ret;

	ret = __account_locked_vm(mm, abs(npage), npage > 0, task, lock_cap);
	mmap_write_unlock(mm);
	return ret;
}

static int vfio_lock_acct(struct vfio_dma *dma, long npage, bool async)
{
	struct mm_struct *mm;
	int ret;

	if (!npage)
		return 0;

	mm = dma->mm;
	if (async && !mmget_not_zero(mm))
		return -ESRCH;

	ret = mm_lock_acct(dma->task, mm, dma->lock_cap, npage);
	if (!ret)
		dma->locked_vm += npage;

	if (async)
		mmput(mm);

	return ret;
}

/* No struct page, or a reserved one: neither pinned nor charged. */
static bool is_invalid_reserved_pfn(unsigned long pfn)
{
	if (pfn_valid(pfn))
		return PageReserved(pfn_to_page(pfn));

	return true;
}

static int put_pfn(unsigned long pfn, int prot)
{
	if (!is_invalid_reserved_pfn(pfn)) {
		struct page *page = pfn_to_page(pfn);

		unpin_user_pages_dirty_lock(&page, 1, prot & IOMMU_WRITE);
		return 1;
	}
	return 0;
}

static void __vfio_batch_init(struct vfio_batch *batch, bool single)
{
	batch->size = 0;
	batch->offset = 0;

	if (single || unlikely(disable_hugepages))
		goto fallback;

	batch->pages = (struct page **) __get_free_page(GFP_KERNEL);
	if (!batch->pages)
		goto fallback;

	batch->capacity = VFIO_BATCH_MAX_CAPACITY;
	return;

fallback:
	batch->pages = &batch->fallback_page;
	batch->capacity = 1;
}

static void vfio_batch_init_single(struct vfio_batch *batch)
{
	__vfio_batch_init(batch, true);
}

static void vfio_batch_fini(struct vfio_batch *batch)
{
	if (batch->capacity == VFIO_BATCH_MAX_CAPACITY)
		free_page((unsigned long)batch->pages);
}

static void vfio_batch_unpin(struct vfio_batch *batch, struct vfio_dma *dma)
{
	while (batch->size) {
		put_pfn(page_to_pfn(batch->pages[batch->offset]), dma->prot);
		batch->offset++;
		batch->size--;
	}
}

static int follow_fault_pfn(struct vm_area_struct *vma, struct mm_struct *mm,
			    unsigned long vaddr, unsigned long *pfn,
			    unsigned long *addr_mask, bool write_fault)
{
	struct follow_pfnmap_args args = { .vma = vma, .address = vaddr };
	int ret;

	ret = follow_pfnmap_start(&args);
	if (ret) {
		bool unlocked = false;

		ret = fixup_user_fault(mm, vaddr, FAULT_FLAG_REMOTE |
				       (write_fault ? FAULT_FLAG_WRITE : 0),
				       &unlocked);
		if (unlocked)
			return -EAGAIN;
		if (ret)
			return ret;

		ret = follow_pfnmap_start(&args);
		if (ret)
			return ret;
	}

	if (write_fault && !args.writable)
		ret = -EFAULT;
	else {
		*pfn = args.pfn;
		*addr_mask = args.addr_mask;
	}

	follow_pfnmap_end(&args);
	return ret;
}

/*
 * How many pfns from vaddr, or -errno; the first in *pfn. Pages fill the batch; a VM_PFNMAP
 * answers the rest of its leaf with the batch left empty.
 */
static long vaddr_get_pfns(struct mm_struct *mm, unsigned long vaddr,
			   unsigned long npages, int prot, unsigned long *pfn,
			   struct vfio_batch *batch)
{
	unsigned long pin_pages = min_t(unsigned long, npages, batch->capacity);
	struct vm_area_struct *vma;
	unsigned int flags = 0;
	long ret;

	if (prot & IOMMU_WRITE)
		flags |= FOLL_WRITE;

	mmap_read_lock(mm);
	ret = pin_user_pages_remote(mm, vaddr, pin_pages, flags | FOLL_LONGTERM,
				    batch->pages, NULL);
	if (ret > 0) {
		*pfn = page_to_pfn(batch->pages[0]);
		batch->size = ret;
		batch->offset = 0;
		goto done;
	} else if (!ret) {
		ret = -EFAULT;
	}

	vaddr = untagged_addr_remote(mm, vaddr);
retry:
	vma = vma_lookup(mm, vaddr);
	if (vma && vma->vm_flags & VM_PFNMAP) {
		unsigned long addr_mask;

		ret = follow_fault_pfn(vma, mm, vaddr, pfn, &addr_mask,
				       prot & IOMMU_WRITE);
		if (ret == -EAGAIN)
			goto retry;
		if (!ret) {
			if (is_invalid_reserved_pfn(*pfn)) {
				unsigned long epfn;

				epfn = (*pfn | (~addr_mask >> PAGE_SHIFT)) + 1;
				ret = min_t(long, npages, epfn - *pfn);
			} else {
				ret = -EFAULT;
			}
		}
	}
done:
	mmap_read_unlock(mm);
	return ret;
}

/* Container code between the pinning functions: the extractor leaves it behind. */
static int vfio_wait(struct vfio_iommu *iommu)
{
	DEFINE_WAIT(wait);

	prepare_to_wait(&iommu->vaddr_wait, &wait, TASK_KILLABLE);
	mutex_unlock(&iommu->lock);
	schedule();
	mutex_lock(&iommu->lock);
	finish_wait(&iommu->vaddr_wait, &wait);
	return WAITED;
}

/*
 * Pins the physically contiguous run at vaddr, of one page class: how many pages, with its
 * first pfn in *pfn_base, or -errno with nothing left pinned.
 */
/* How many external pins lie in nr_pages pages from iova_start. */
static long vpfn_pages(struct vfio_dma *dma,
		dma_addr_t iova_start, long nr_pages)
{
	dma_addr_t iova_end = iova_start + (nr_pages << PAGE_SHIFT);
	struct vfio_pfn *top = vfio_find_vpfn_range(dma, iova_start, iova_end);
	struct rb_node *prev, *next;
	long ret = 1;

	if (likely(!top))
		return 0;

	prev = next = &top->node;
	while ((prev = rb_prev(prev))) {
		if (rb_entry(prev, struct vfio_pfn, node)->iova < iova_start)
			break;
		ret++;
	}
	while ((next = rb_next(next))) {
		if (rb_entry(next, struct vfio_pfn, node)->iova >= iova_end)
			break;
		ret++;
	}
	return ret;
}

static long vfio_pin_pages_remote(struct vfio_dma *dma, unsigned long vaddr,
				  unsigned long npage, unsigned long *pfn_base,
				  unsigned long limit, struct vfio_batch *batch)
{
	unsigned long pfn = 0;
	struct mm_struct *mm = current->mm;
	long ret, pinned = 0, lock_acct = 0;
	bool rsvd = false;
	dma_addr_t iova = vaddr - dma->vaddr + dma->iova;

	if (!mm)
		return -ENODEV;

	if (batch->size) {
		/* Pages left over from the previous call. */
		*pfn_base = page_to_pfn(batch->pages[batch->offset]);
		pfn = *pfn_base;
		rsvd = is_invalid_reserved_pfn(*pfn_base);
	} else {
		*pfn_base = 0;
	}

	if (unlikely(disable_hugepages))
		npage = 1;

	while (npage) {
		if (!batch->size) {
			ret = vaddr_get_pfns(mm, vaddr, npage, dma->prot,
					     &pfn, batch);
			if (ret < 0)
				goto unpin_out;

			if (!*pfn_base) {
				*pfn_base = pfn;
				rsvd = is_invalid_reserved_pfn(*pfn_base);
			}

			/* A pfnmap leaf: one step over all of it. */
			if (!batch->size) {
				if (pfn != *pfn_base + pinned || !rsvd)
					goto out;

				pinned += ret;
				npage -= ret;
				vaddr += PAGE_SIZE * ret;
				iova += PAGE_SIZE * ret;
				continue;
			}
		}

		/* pfn is set for the first page; the next is read at the end of each step. */
		while (true) {
			long nr_pages, acct_pages = 0;

			if (pfn != *pfn_base + pinned ||
			    rsvd != is_invalid_reserved_pfn(pfn))
				goto out;

			/* FOLL_LONGTERM pins no reserved page: a contiguous group is one class. */
			nr_pages = num_pages_contiguous(&batch->pages[batch->offset],
							batch->size);
			if (!rsvd) {
				acct_pages = nr_pages;
				acct_pages -= vpfn_pages(dma, iova, nr_pages);
			}

			/* Reserved pages are not charged; external pins already are. */
			if (acct_pages) {
				if (!dma->lock_cap &&
				    mm->locked_vm + lock_acct + acct_pages > limit) {
					pr_warn("%s: RLIMIT_MEMLOCK (%ld) exceeded\n",
						__func__, limit << PAGE_SHIFT);
					ret = -ENOMEM;
					goto unpin_out;
				}
				lock_acct += acct_pages;
			}

			pinned += nr_pages;
			npage -= nr_pages;
			vaddr += PAGE_SIZE * nr_pages;
			iova += PAGE_SIZE * nr_pages;
			batch->offset += nr_pages;
			batch->size -= nr_pages;

			if (!batch->size)
				break;

			pfn = page_to_pfn(batch->pages[batch->offset]);
		}
	}

out:
	dma->has_rsvd |= rsvd;
	ret = vfio_lock_acct(dma, lock_acct, false);

unpin_out:
	if (ret < 0) {
		if (pinned && !rsvd) {
			for (pfn = *pfn_base; pinned; pfn++, pinned--)
				put_pfn(pfn, dma->prot);
		}
		vfio_batch_unpin(batch, dma);
		return ret;
	}

	return pinned;
}

static void put_valid_unreserved_pfns(unsigned long start_pfn,
				      unsigned long npage, int prot)
{
	unpin_user_page_range_dirty_lock(pfn_to_page(start_pfn), npage,
					 prot & IOMMU_WRITE);
}

static long vfio_unpin_pages_remote(struct vfio_dma *dma, dma_addr_t iova,
				    unsigned long pfn, unsigned long npage,
				    bool do_accounting)
{
	long unlocked = 0, locked = vpfn_pages(dma, iova, npage);

	if (dma->has_rsvd) {
		unsigned long i;

		for (i = 0; i < npage; i++)
			if (put_pfn(pfn++, dma->prot))
				unlocked++;
	} else {
		/* No reserved run was ever mapped: the extent is one unpin. */
		put_valid_unreserved_pfns(pfn, npage, dma->prot);
		unlocked = npage;
	}
	if (do_accounting)
		vfio_lock_acct(dma, locked - unlocked, true);

	return unlocked;
}

static int vfio_pin_page_external(struct vfio_dma *dma, unsigned long vaddr,
				  unsigned long *pfn_base, bool do_accounting)
{
	struct vfio_batch batch;
	struct mm_struct *mm;
	int ret;

	mm = dma->mm;
	if (!mmget_not_zero(mm))
		return -ENODEV;

	vfio_batch_init_single(&batch);

	ret = vaddr_get_pfns(mm, vaddr, 1, dma->prot, pfn_base, &batch);
	if (ret != 1)
		goto out;

	ret = 0;
	if (do_accounting && !is_invalid_reserved_pfn(*pfn_base)) {
		ret = vfio_lock_acct(dma, 1, true);
		if (ret)
			put_pfn(*pfn_base, dma->prot);
	}
out:
	vfio_batch_fini(&batch);
	mmput(mm);
	return ret;
}

static long vfio_iommu_type1_ioctl(void *iommu_data, unsigned int cmd,
				   unsigned long arg)
{
	struct vfio_iommu *iommu = iommu_data;

	switch (cmd) {
	case VFIO_CHECK_EXTENSION:
		return vfio_iommu_type1_check_extension(iommu, arg);
	default:
		return -ENOTTY;
	}
}

/* The end of a whole file, for the extractor: escaped quotes and braces in strings, an
 * initializer with braces, module macros. None of it is needed, none of it compiles here. */
static int vfio_iommu_type1_attach_group(void *iommu_data, struct iommu_group *iommu_group)
{
	if (!allow_unsafe_interrupts && !iommu_group_has_isolated_msi(iommu_group)) {
		pr_warn("%s: No interrupt remapping support.  Use the module param \"allow_unsafe_interrupts\" { to enable }\n",
			__func__);
		return -EPERM;
	}
	return 0;
}

static const struct vfio_iommu_driver_ops vfio_iommu_driver_ops_type1 = {
	.name			= "vfio-iommu-type1",
	.owner			= THIS_MODULE,
	.ioctl			= vfio_iommu_type1_ioctl,
	.attach_group		= vfio_iommu_type1_attach_group,
};

static int __init vfio_iommu_type1_init(void)
{
	return vfio_register_iommu_driver(&vfio_iommu_driver_ops_type1);
}

module_init(vfio_iommu_type1_init);

MODULE_VERSION(DRIVER_VERSION);
MODULE_LICENSE("GPL v2");
MODULE_AUTHOR(DRIVER_AUTHOR);
MODULE_DESCRIPTION(DRIVER_DESC);
