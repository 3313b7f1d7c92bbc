/*
 * pinreplay's own C rendering of Linux 4.17-rc1's pinning block (4.16 with commit
 * 356e88ebe447, reverted before 4.17): vfio_lock_acct() through vfio_unpin_pages_remote() of
 * drivers/vfio/vfio_iommu_type1.c, written from the semantics in KERNEL-NOTES.md in the
 * kernel's style, with the kernel's names and signatures, for the tests of C engines. Not
 * kernel source: a reviewer runs their own tree's block instead.
 */

/* Charge (npage > 0) or uncharge the task's locked_vm; a charge beyond RLIMIT_MEMLOCK fails
 * unless the caller (or, without one, the task) may lock memory. */
static int vfio_lock_acct(struct task_struct *task, long npage, bool *lock_cap)
{
	struct mm_struct *mm;
	bool own_mm;
	int err;

	if (npage == 0)
		return 0;

	own_mm = task->mm == current->mm;
	mm = own_mm ? task->mm : get_task_mm(task);
	if (mm == NULL)
		return -ESRCH;

	err = down_write_killable(&mm->mmap_sem);
	if (err == 0) {
		bool may_lock = lock_cap ? *lock_cap : has_capability(task, CAP_IPC_LOCK);

		if (npage > 0 && !may_lock) {
			unsigned long pages = task_rlimit(task, RLIMIT_MEMLOCK) >> PAGE_SHIFT;

			if (mm->locked_vm + npage > pages)
				err = -ENOMEM;
		}
		if (err == 0)
			mm->locked_vm += npage;
		up_write(&mm->mmap_sem);
	}

	if (!own_mm)
		mmput(mm);
	return err;
}

/* True for a frame without a struct page (device memory) and for a PageReserved one. */
static bool is_invalid_reserved_pfn(unsigned long pfn)
{
	struct page *page, *head;
	bool head_reserved;

	if (!pfn_valid(pfn))
		return true;

	page = pfn_to_page(pfn);
	head = compound_head(page);
	head_reserved = PageReserved(head) != 0;
	if (head != page) {
		/* The compound page may have been split meanwhile: trust the head only while
		 * the page is still its tail. */
		smp_rmb();
		if (PageTail(page))
			return head_reserved;
	}
	return PageReserved(page) != 0;
}

/* Drop the reference pinning took on a frame that has one; 1 if it did. */
static int put_pfn(unsigned long pfn, int prot)
{
	struct page *page;

	if (is_invalid_reserved_pfn(pfn))
		return 0;

	page = pfn_to_page(pfn);
	if (prot & IOMMU_WRITE)
		SetPageDirty(page);
	put_page(page);
	return 1;
}

/* The frame behind one user page: GUP for memory with struct pages; for a VM_PFNMAP VMA the
 * frame computed from vm_pgoff, accepted only when it is not ordinary RAM. */
static int vaddr_get_pfn(struct mm_struct *mm, unsigned long vaddr, int prot, unsigned long *pfn)
{
	struct vm_area_struct *vmas[1], *vma;
	struct page *pages[1];
	int ret;

	if (mm == current->mm) {
		ret = get_user_pages_longterm(vaddr, 1, !!(prot & IOMMU_WRITE), pages, vmas);
	} else {
		down_read(&mm->mmap_sem);
		ret = get_user_pages_remote(NULL, mm, vaddr, 1, (prot & IOMMU_WRITE) ? FOLL_WRITE : 0,
					    pages, vmas, NULL);
		if (ret > 0 && vma_is_fsdax(vmas[0])) {
			put_page(pages[0]);
			ret = -EOPNOTSUPP;
		}
		up_read(&mm->mmap_sem);
	}

	if (ret == 1) {
		*pfn = page_to_pfn(pages[0]);
		return 0;
	}

	down_read(&mm->mmap_sem);
	vma = find_vma_intersection(mm, vaddr, vaddr + 1);
	if (vma != NULL && (vma->vm_flags & VM_PFNMAP)) {
		*pfn = vma->vm_pgoff + ((vaddr - vma->vm_start) >> PAGE_SHIFT);
		if (is_invalid_reserved_pfn(*pfn))
			ret = 0;
	}
	up_read(&mm->mmap_sem);
	return ret;
}

/* Pin the run of physically consecutive frames from vaddr, at most npage; a reserved or
 * device first frame returns at once with the length of its whole VMA, capped at npage (the
 * patch's shortcut: it is the VMA's size, not what lies past vaddr). */
static long vfio_pin_pages_remote(struct vfio_dma *dma, unsigned long vaddr, long npage,
				  unsigned long *pfn_base, bool lock_cap, unsigned long limit)
{
	dma_addr_t iova = dma->iova + (vaddr - dma->vaddr);
	long ret, pinned = 0, lock_acct = 0;
	unsigned long pfn = 0;

	if (current->mm == NULL)
		return -ENODEV;

	ret = vaddr_get_pfn(current->mm, vaddr, dma->prot, pfn_base);
	if (ret)
		return ret;
	if (is_invalid_reserved_pfn(*pfn_base)) {
		struct vm_area_struct *vma;

		down_read(&current->mm->mmap_sem);
		vma = find_vma_intersection(current->mm, vaddr, vaddr + 1);
		pinned = min(npage, (long)vma_pages(vma));
		up_read(&current->mm->mmap_sem);
		return pinned;
	}
	pinned = 1;

	/* Externally pinned frames were charged already. */
	if (vfio_find_vpfn(dma, iova) == NULL) {
		if (!lock_cap && current->mm->locked_vm + 1 > limit) {
			put_pfn(*pfn_base, dma->prot);
			pr_warn("%s: RLIMIT_MEMLOCK (%ld) exceeded\n", __func__, limit << PAGE_SHIFT);
			return -ENOMEM;
		}
		lock_acct = 1;
	}

	if (unlikely(disable_hugepages))
		goto out;

	for (vaddr += PAGE_SIZE, iova += PAGE_SIZE; pinned < npage;
	     pinned++, vaddr += PAGE_SIZE, iova += PAGE_SIZE) {
		ret = vaddr_get_pfn(current->mm, vaddr, dma->prot, &pfn);
		if (ret)
			break;	/* the run ends here; out: decides the return */

		if (pfn != *pfn_base + pinned) {
			put_pfn(pfn, dma->prot);
			break;
		}

		if (vfio_find_vpfn(dma, iova) == NULL) {
			if (!lock_cap && current->mm->locked_vm + lock_acct + 1 > limit) {
				put_pfn(pfn, dma->prot);
				pr_warn("%s: RLIMIT_MEMLOCK (%ld) exceeded\n", __func__, limit << PAGE_SHIFT);
				ret = -ENOMEM;
				goto unpin_out;
			}
			lock_acct++;
		}
	}

out:
	ret = vfio_lock_acct(current, lock_acct, &lock_cap);

unpin_out:
	if (ret) {
		for (pfn = *pfn_base; pinned; pinned--, pfn++)
			put_pfn(pfn, dma->prot);
		return ret;
	}
	return pinned;
}

/* Put npage frames from pfn, mapped at iova; uncharge them less the externally pinned ones
 * when asked. Returns how many held a reference. */
static long vfio_unpin_pages_remote(struct vfio_dma *dma, dma_addr_t iova, unsigned long pfn,
				    long npage, bool do_accounting)
{
	long unlocked = 0, locked = 0, i;

	for (i = 0; i < npage; i++, pfn++, iova += PAGE_SIZE) {
		if (!put_pfn(pfn, dma->prot))
			continue;
		unlocked++;
		if (vfio_find_vpfn(dma, iova))
			locked++;
	}

	if (do_accounting)
		vfio_lock_acct(dma->task, locked - unlocked, NULL);

	return unlocked;
}
