/*
 * The C ABI between pinreplay and an engine compiled from C: the simulated kernel an engine
 * runs in, as one structure of state and callbacks. pinreplay fills it before each call into
 * the engine and reads back what the engine changed (locked_vm, the counters).
 *
 * Shared by the Swift side (through the CEngineABI module) and by the kernel headers of
 * include/pinreplay/ (kernel-4.16.h), which build the kernel's API on top of it.
 */
#ifndef PINREPLAY_WORLD_H
#define PINREPLAY_WORLD_H

/* The classes of a physical frame (SPEC.md section 2). */
enum pinreplay_pfn_class {
	PINREPLAY_PFN_RAM = 0,		/* a struct page, not PageReserved */
	PINREPLAY_PFN_RESERVED = 1,	/* a struct page with PageReserved */
	PINREPLAY_PFN_MMIO = 2,		/* no struct page: pfn_valid() is false */
};

/* The VM_* bits of vm_flags the world sets, with the kernel's values. */
#define PINREPLAY_VM_READ 0x00000001UL
#define PINREPLAY_VM_WRITE 0x00000002UL
#define PINREPLAY_VM_EXEC 0x00000004UL
#define PINREPLAY_VM_SHARED 0x00000008UL
#define PINREPLAY_VM_PFNMAP 0x00000400UL
#define PINREPLAY_VM_IO 0x00004000UL
#define PINREPLAY_VM_HUGETLB 0x00400000UL
#define PINREPLAY_VM_MIXEDMAP 0x10000000UL
#define PINREPLAY_VM_HUGEPAGE 0x20000000UL

/* A VMA as the world describes it; flags are PINREPLAY_VM_* bits. */
struct pinreplay_vma {
	unsigned long start;
	unsigned long end;
	unsigned long flags;
	unsigned long pgoff;
};

/* A dma as the container sees it; handle is the container's own. */
struct pinreplay_dma {
	void *handle;
	unsigned long long iova;
	unsigned long vaddr;
	unsigned long size;
	int prot;
	/* 5.x on: capable(CAP_IPC_LOCK) when the map came (dma->lock_cap). */
	int lock_cap;
	/* 6.18: a reserved run was mapped into this dma; read before the call, written after. */
	int has_rsvd;
	/* Which state of its external pins this is: 0 never pinned, else unique in the process,
	 * so an engine that has them already loads them again only when they changed. */
	unsigned long long pins_version;
};

/* The container's struct vfio_batch between calls of one map (5.x on): the pfns of
 * pages[offset .. offset + size) are the pages pinned and not yet consumed. */
struct pinreplay_batch {
	unsigned long *pfns;
	unsigned int capacity;
	unsigned int size;
	unsigned int offset;
};

/* An external pin of a dma (its struct vfio_pfn). */
struct pinreplay_pin {
	unsigned long long iova;
	unsigned long pfn;
	unsigned int ref_count;
};

/* What follow_pte() / follow_pfnmap_start() find at an address. */
struct pinreplay_pfnmap {
	unsigned long pfn;
	unsigned long addr_mask;
	int writable;
};

/* Operations counted by the engine's own code (the cost model's counters of the same names). */
struct pinreplay_counts {
	unsigned long vaddr_get_pfn;
	unsigned long pages_walked;
	unsigned long put_pfn;
	unsigned long vfio_lock_acct;
	unsigned long mmap_lock;
};

struct pinreplay_world {
	/* The simulated kernel, passed back to every callback. */
	void *host;
	/* current->mm->locked_vm: read before the call, written back after it. */
	unsigned long locked_vm;
	/* RLIMIT_MEMLOCK in bytes (~0UL: unlimited) and CAP_IPC_LOCK of the one task. */
	unsigned long rlimit_memlock;
	int cap_ipc_lock;
	/* The vfio_iommu_type1 module parameter. */
	int disable_hugepages;
	/* Zeroed before each call, added to the host's counters after it. */
	struct pinreplay_counts counts;

	/* The run the last get_user_page() left open for write: the pages from *vpn up to *end
	 * would be pinned as *pfn, *pfn + 1, ... without a lookup or a fault; 0 when none. */
	int (*gup_run)(void *host, int write, unsigned long *vpn, unsigned long *end, unsigned long *pfn);
	/* n get_user_page() calls of that run at once (their counts and references). */
	void (*gup_run_take)(void *host, unsigned long n);
	/* get_user_pages*() of one page: 1 with *pfn set (one reference taken), or -errno. With
	 * `vma` not NULL, a pinned page also fills it with the VMA GUP went through (part of
	 * GUP's cost, so one call into the world a page, not two). */
	long (*get_user_page)(void *host, unsigned long vaddr, int write, unsigned long *pfn,
			      struct pinreplay_vma *vma);
	/* find_vma_intersection(): 1 with *vma filled, or 0. Counts a find_vma. */
	int (*find_vma_intersection)(void *host, unsigned long start, unsigned long end,
				     struct pinreplay_vma *vma);
	/* The class of a frame (enum pinreplay_pfn_class), and in *end the first frame after it
	 * where the class may differ: valid for the call (classes change between statements). */
	int (*pfn_class_stretch)(void *host, unsigned long pfn, unsigned long *end);
	/* put_page() (or unpin_user_page(): the world tells a pin from a reference apart nowhere)
	 * of n consecutive frames: drops one reference of each that has a struct page. */
	void (*put_pages)(void *host, unsigned long pfn, unsigned long n);
	/* The external pins of a dma in iova order: how many there are; the first cap of
	 * them are written to pins. */
	long (*dma_pins)(void *host, void *dma_handle, struct pinreplay_pin *pins, long cap);

	/* --- 5.x on ---------------------------------------------------------------------- */
	/* The zero page's pfn, and whether there is one (is_zero_pfn()). */
	unsigned long zero_pfn;
	int has_zero_pfn;
	/* pin_user_pages_remote(FOLL_LONGTERM) of up to nr pages from vaddr: how many were
	 * pinned (pfns[0..n), one pin reference each), or the first page's -errno when none. */
	long (*pin_user_pages)(void *host, unsigned long vaddr, unsigned long nr, int write, unsigned long *pfns);
	/* unpin_user_page_range_dirty_lock() over npage frames from pfn. */
	void (*unpin_user_page_range)(void *host, unsigned long pfn, unsigned long npage, int dirty);
	/* follow_pfnmap_start() at vaddr in a VMA of these vm_flags (the engine holds the VMA):
	 * 0 with *out filled, or -EINVAL when it is no io/pfnmap VMA or no pte is present. */
	int (*follow_pfnmap)(void *host, unsigned long vaddr, unsigned long vm_flags, struct pinreplay_pfnmap *out);
	/* follow_pte(mm, vaddr) (5.x to 6.9): the same for the VMA the world finds at vaddr, 4 KiB
	 * ptes only. */
	int (*follow_pte)(void *host, unsigned long vaddr, struct pinreplay_pfnmap *out);
	/* fixup_user_fault(): 0 or -errno. */
	int (*fixup_user_fault)(void *host, unsigned long vaddr, int write);
};

#endif /* PINREPLAY_WORLD_H */
