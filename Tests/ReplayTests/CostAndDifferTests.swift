import Replay
import TestSupport
import Testing
import TraceFormat
import VFIOModel

@Suite struct CostModelTests {
    @Test("Calibration: the seed's 16 GiB BAR costs about 0.4 s (377.5 ms) in v4.16 and about a microsecond in v4.17-rc1")
    func calibration() {
        var old = CostCounters()
        old.vaddr_get_pfn = 4_194_304
        old.get_user_pages = 4_194_304
        old.mmap_lock = 4_194_304
        old.find_vma = 4_194_304
        old.pages_walked = 4_194_304
        old.iommu_map = 1
        #expect(CostModel.estimate(old) == 377_488_360)
        #expect(CostModel.human(CostModel.estimate(old)) == "377.5 ms")
        var new = CostCounters()
        new.vaddr_get_pfn = 1
        new.get_user_pages = 1
        new.mmap_lock = 2
        new.find_vma = 2
        new.pages_walked = 1
        new.iommu_map = 1
        #expect(CostModel.estimate(new) == 1130)
        #expect(CostModel.human(1130) == "1.1 µs")
    }
}

@Suite struct DifferTests {
    let engines = ["a", "b"]

    @Test("Same translation in other chunks is a chunk-boundaries divergence")
    func boundaries() throws {
        let a = RequestOutcome.map(ret: 0, chunks: [chunk(0, 0x10, 1), chunk(0x1000, 0x11, 1)], lockedVM: 0)
        let b = RequestOutcome.map(ret: 0, chunks: [chunk(0, 0x10, 2)], lockedVM: 0)
        let d = try #require(
            Differ.compare([a, b], effects: [.init(lockedVM: 0, ramRefs: 0), .init(lockedVM: 0, ramRefs: 0)], engines: engines))
        #expect(d.kind == .chunkBoundaries)
        #expect(d.detail == "a maps 2 chunks, b 1; first differing chunk #0: a [0x0, 0x10, 1], b [0x0, 0x10, 2]")
    }

    @Test("The first differing page is named; more serious kinds come first")
    func mappingAndAccounting() throws {
        let a = RequestOutcome.map(ret: 0, chunks: [chunk(0, 0x10, 4)], lockedVM: 4)
        let b = RequestOutcome.map(ret: 0, chunks: [chunk(0, 0x10, 2), chunk(0x2000, 0x90, 2)], lockedVM: 3)
        let d = try #require(
            Differ.compare([a, b], effects: [.init(lockedVM: 4, ramRefs: 4), .init(lockedVM: 3, ramRefs: 4)], engines: engines))
        #expect(d.kind == .mapping)
        #expect(d.detail == "at iova 0x2000: a maps pfn 0x12, b maps pfn 0x90; also accounting, chunk-boundaries")
        let short = RequestOutcome.map(ret: -EFAULT, chunks: [chunk(0, 0x10, 2)], lockedVM: 0)
        #expect(
            Differ.compare([a, short], effects: [.init(lockedVM: 0, ramRefs: 0), .init(lockedVM: 0, ramRefs: 0)], engines: engines)?.kind
                == .returnCode)
    }

    @Test("A difference in locked_vm carried over from an earlier request is not a divergence")
    func carriedOver() {
        let a = RequestOutcome.unmap(ret: 0, unmapped: 0x1000, lockedVM: 10)
        let b = RequestOutcome.unmap(ret: 0, unmapped: 0x1000, lockedVM: 7)
        let same = Differ.Effect(lockedVM: -1, ramRefs: -1)
        #expect(Differ.compare([a, b], effects: [same, same], engines: engines) == nil)
    }

    @Test("Identical outcomes with different ram references diverge in page references")
    func references() throws {
        let o = RequestOutcome.unmap(ret: 0, unmapped: 0x4000, lockedVM: 0)
        #expect(
            Differ.compare([o, o], effects: [.init(lockedVM: 0, ramRefs: -4), .init(lockedVM: 0, ramRefs: -4)], engines: engines) == nil)
        let d = try #require(
            Differ.compare([o, o], effects: [.init(lockedVM: 0, ramRefs: -1), .init(lockedVM: 0, ramRefs: -4)], engines: engines))
        #expect(d.kind == .pageReferences)
        #expect(d.detail == "net ram page references a -1, b -4")
    }
}

/// The trace form spells every world VMA flag, each by its kernel name.
@Suite struct VMAFlagKeywordTests {
    @Test("Every VMA flag has a keyword, and the text form reads each back to its flag")
    func flags() throws {
        let world: [String: VMAFlags] = [
            "io": .io, "pfnmap": .pfnmap, "mixedmap": .mixedmap, "shared": .shared, "linear": .linear, "hugepage": .hugepage,
        ]
        #expect(Set(VMAFlags.keywords.map(\.0)) == Set(world.keys))
        #expect(VMAFlags.keywords.reduce(VMAFlags()) { $0.union($1.1) }.rawValue == 0x3f)
        for (keyword, flag) in VMAFlags.keywords {
            let text = "vma 0x1000 0x2000 rw- \(keyword)"
            #expect(Statement.vma(VMASpec(start: 0x1000, end: 0x2000, flags: flag)).canonicalText == text)
            var parser = TextParser(file: "t.txt")
            _ = try parser.parse(line: Substring(textHeader))
            #expect(try parser.parse(line: Substring(text)) == .vma(VMASpec(start: 0x1000, end: 0x2000, flags: world[keyword] ?? [])))
        }
    }
}
