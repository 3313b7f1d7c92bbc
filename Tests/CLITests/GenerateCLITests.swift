import Foundation
import TestSupport
import Testing

/// `pinreplay generate` end to end.
@Suite struct GenerateCLITests {
    @Test("--list names every profile with its defaults")
    func list() throws {
        let r = try CLI.run(["generate", "--list"])
        #expect(r.status == 0)
        for p in ["gpu-16g-bar", "nic-sriov-4vf", "viommu-churn", "hugetlb-1g-64g", "tight-memlock", "intx-no-kvm"] {
            #expect(r.stdout.contains("\n" + p + " ") || r.stdout.hasPrefix(p + " "))
        }
        #expect(r.stdout.contains("ram 16 GiB, thp, devices gpu"))
    }

    @Test("Text to stdout with -o -; binary to a file, deterministic; both forms give the same statements")
    func outputs() throws {
        let dir = Paths.scratch()
        let text = try CLI.run(["generate", "--profile", "intx-no-kvm", "--requests", "3", "--text", "-o", "-"])
        #expect(text.status == 0)
        #expect(text.stdout.hasPrefix("vptr-text 1\npage_shift 12\nmemlock 0xc0000000\n"))
        let a = dir.appendingPathComponent("a.vptr").path
        let b = dir.appendingPathComponent("b.vptr").path
        #expect(try CLI.run(["generate", "--profile", "intx-no-kvm", "--requests", "3", "-o", a]).status == 0)
        #expect(try CLI.run(["generate", "--profile", "intx-no-kvm", "--requests", "3", "-o", b, "--seed", "1"]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data(contentsOf: URL(fileURLWithPath: b)))
        #expect(try CLI.run(["dump", a]).stdout == text.stdout)
    }

    @Test(
        "Bad parameters exit 2 with one line",
        arguments: [
            (
                ["--profile", "nope"],
                "pinreplay: unknown profile 'nope'; profiles: gpu-16g-bar, nic-sriov-4vf, viommu-churn, hugetlb-1g-64g, tight-memlock, intx-no-kvm\n"
            ),
            (["--profile", "gpu-16g-bar", "--ram", "16777217"], "pinreplay: --ram 16777217 is not page aligned\n"),
            (
                ["--profile", "gpu-16g-bar", "--device", "gpu:bar1=12G"],
                "pinreplay: --device gpu: bar1 size 12G is not a power of two of at least 4 KiB\n"
            ),
            (
                ["--profile", "gpu-16g-bar", "--backing", "ssd"],
                "pinreplay: The value 'ssd' is invalid for '--backing <backing>'. Please provide one of 'anon', 'thp', 'hugetlb-2m', 'hugetlb-1g' or 'memfd'. (see 'pinreplay help')\n"
            ),
            (["--profile", "gpu-16g-bar", "--ram", "lots"], "pinreplay: --ram: bad size 'lots'\n"),
        ])
    func badParameters(args: [String], message: String) throws {
        let r = try CLI.run(["generate"] + args + ["-o", "-"])
        #expect(r.status == 2)
        #expect(r.stderr == message)
        #expect(r.stdout == "")
    }
}
