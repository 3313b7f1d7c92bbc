import TraceFormat

/// A generator parameter that cannot be: exit 2 with this one line.
public struct GenError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var message: String
    /// An error saying `message`.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How guest RAM is backed on the host.
public enum Backing: String, Sendable, CaseIterable {
    /// Anonymous 4 KiB pages, physically scattered.
    case anon
    /// Transparent huge pages: 2 MiB runs, some fragmented.
    case thp
    /// hugetlbfs with 2 MiB pages.
    case hugetlb2m = "hugetlb-2m"
    /// hugetlbfs with 1 GiB pages.
    case hugetlb1g = "hugetlb-1g"
    /// A shared memfd.
    case memfd

    /// The huge page size of a hugetlbfs backing, 0 otherwise.
    var hugePage: UInt64 {
        switch self {
        case .hugetlb2m: 2 << 20
        case .hugetlb1g: 1 << 30
        default: 0
        }
    }
}

/// The machine type: where low RAM ends.
public enum Machine: String, Sendable, CaseIterable {
    /// q35: low RAM 2 GiB when RAM is 2.75 GiB or more, else all of RAM.
    case q35
    /// i440fx: low RAM 3 GiB when RAM is 3.5 GiB or more, else all of RAM.
    case pc
}

/// One BAR of an assigned device.
public struct BARSpec: Equatable, Sendable {
    /// The BAR number, 0 to 5.
    public var index: Int
    /// Its size in bytes, a power of two.
    public var size: UInt64
    /// Offset of the MSI-X table page, which QEMU does not DMA-map: the BAR becomes the
    /// pieces around it.
    public var msixOffset: UInt64?
}

/// An assigned device: a name and its BARs.
public struct DeviceSpec: Equatable, Sendable {
    /// The device's name in marks and VMA names.
    public var name: String
    /// Its memory BARs.
    public var bars: [BARSpec]

    /// Presets usable as `--device NAME`.
    public static let presets: [(name: String, spec: String, summary: String)] = [
        ("gpu", "gpu:bar0=16M:msix@0xb90000,bar1=16G,bar3=32M", "16 MiB BAR0 holding MSI-X, 16 GiB prefetchable BAR1, 32 MiB BAR3"),
        ("nic", "nic:bar0=128K,bar3=16K:msix@0", "a NIC function: 128 KiB registers, 16 KiB MSI-X BAR"),
        ("vf", "vf:bar0=16K,bar3=16K:msix@0", "an SR-IOV virtual function: 16 KiB registers, 16 KiB MSI-X BAR"),
    ]

    /// Parses `NAME:barN=SIZE[:msix[@OFFSET]],...` or a preset name.
    public static func parse(_ text: String) throws(GenError) -> DeviceSpec {
        if let preset = presets.first(where: { $0.name == text }) { return try parse(preset.spec) }
        guard let colon = text.firstIndex(of: ":") else {
            throw GenError("--device '\(text)': expected a preset (\(presets.map(\.name).joined(separator: ", "))) or NAME:barN=SIZE,...")
        }
        let name = String(text[..<colon])
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw GenError("--device '\(text)': the name must be letters, digits, '-', '_' or '.'")
        }
        var bars: [BARSpec] = []
        for item in text[text.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            let kv = parts[0].split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[0].hasPrefix("bar"), let index = Int(kv[0].dropFirst(3)), (0...5).contains(index) else {
                throw GenError("--device '\(text)': '\(item)' is not barN=SIZE with N in 0...5")
            }
            let size = try parseSize(String(kv[1]), what: "--device \(name) bar\(index)")
            guard size >= 4096, size & (size - 1) == 0 else {
                throw GenError("--device \(name): bar\(index) size \(kv[1]) is not a power of two of at least 4 KiB")
            }
            var msix: UInt64?
            if parts.count == 2 {
                let m = parts[1]
                guard m == "msix" || m.hasPrefix("msix@") else {
                    throw GenError("--device \(name): unknown BAR option '\(m)' (msix or msix@OFFSET)")
                }
                msix = m == "msix" ? 0 : try parseSize(String(m.dropFirst(5)), what: "--device \(name) msix offset")
                guard let off = msix, off & 0xfff == 0, off < size else {
                    throw GenError("--device \(name): the MSI-X offset must be page aligned and inside bar\(index)")
                }
            } else if parts.count > 2 {
                throw GenError("--device '\(text)': too many ':' in '\(item)'")
            }
            guard !bars.contains(where: { $0.index == index }) else { throw GenError("--device \(name): bar\(index) given twice") }
            bars.append(BARSpec(index: index, size: size, msixOffset: msix))
        }
        guard !bars.isEmpty else { throw GenError("--device \(name): no BARs") }
        return DeviceSpec(name: name, bars: bars.sorted { $0.index < $1.index })
    }
}

/// Parses a size as the text form spells numbers: decimal or 0x hex, optional K/M/G/T.
public func parseSize(_ text: String, what: String) throws(GenError) -> UInt64 {
    guard let v = parseTraceNumber(text) else { throw GenError("\(what): bad size '\(text)'") }
    return v
}

/// Everything that shapes a generated boot.
public struct GenConfig: Sendable {
    /// The profile the configuration started from.
    public var profile: String
    /// The QEMU machine type.
    public var machine: Machine = .q35
    /// Guest RAM in bytes.
    public var ram: UInt64
    /// What backs guest RAM.
    public var backing: Backing
    /// The assigned devices.
    public var devices: [DeviceSpec]
    /// Guest reboots between boot and shutdown.
    public var reboots = 0
    /// Seed for physical placement, host BAR addresses and the vIOMMU mix.
    public var seed: UInt64 = 1
    /// RLIMIT_MEMLOCK in bytes (`UInt64.max`: unlimited); nil is libvirt's choice, guest RAM
    /// + 1 GiB.
    public var memlock: UInt64?
    /// intel-iommu with caching mode: after the OS enables DMAR, guest IOTLB maps and unmaps.
    public var viommu = false
    /// vIOMMU: IOTLB map requests; INTx: interrupts that toggle the BAR mmaps.
    public var requests = 0
    /// INTx without KVM acceleration: every interrupt unmaps the BARs, which come back later.
    public var intx = false
    /// QEMU 9.2 and later align BAR mmaps to min(BAR size, 1 GiB).
    public var alignBARs = false
    /// DIMM hotplug: bytes plugged after the OS is up and unplugged before shutdown; 0 none.
    public var hotplug: UInt64 = 0
    /// Map guest RAM only: no ROM windows, no PAM shadowing, as in a firmware-less boot.
    public var ramOnly = false

    /// A configuration with the other settings at their defaults.
    public init(profile: String, ram: UInt64, backing: Backing, devices: [DeviceSpec]) {
        self.profile = profile
        self.ram = ram
        self.backing = backing
        self.devices = devices
    }

    /// The effective RLIMIT_MEMLOCK.
    public var effectiveMemlock: UInt64 { memlock ?? ram + hotplug + (1 << 30) }
}

/// A built-in scenario: a name, what it shows, and its defaults.
public struct Profile: Sendable {
    /// The name `--profile` takes.
    public var name: String
    /// What the profile generates, one line.
    public var summary: String
    /// Its configuration before any option changes it.
    public var defaults: GenConfig

    static func device(_ preset: String) -> DeviceSpec {
        // Presets are fixed strings that parse; a failure here is a bug in the table.
        guard let d = try? DeviceSpec.parse(preset) else { preconditionFailure("bad preset \(preset)") }
        return d
    }

    /// Every profile, in the order `--list` prints them.
    public static let all: [Profile] = {
        var gpu = GenConfig(profile: "gpu-16g-bar", ram: 16 << 30, backing: .thp, devices: [device("gpu")])
        gpu.seed = 1
        var nic = GenConfig(
            profile: "nic-sriov-4vf", ram: 8 << 30, backing: .hugetlb2m,
            devices: (0..<4).map { i in
                var vf = device("vf")
                vf.name = "vf\(i)"
                return vf
            })
        nic.reboots = 1
        var viommu = GenConfig(profile: "viommu-churn", ram: 4 << 30, backing: .anon, devices: [device("nic")])
        viommu.viommu = true
        viommu.requests = 10_000
        let huge = GenConfig(profile: "hugetlb-1g-64g", ram: 64 << 30, backing: .hugetlb1g, devices: [device("nic")])
        var tight = GenConfig(profile: "tight-memlock", ram: 4 << 30, backing: .anon, devices: [device("nic")])
        tight.memlock = 2 << 30
        var intx = GenConfig(profile: "intx-no-kvm", ram: 2 << 30, backing: .anon, devices: [device("nic")])
        intx.intx = true
        intx.requests = 100
        return [
            Profile(name: "gpu-16g-bar", summary: "the seed's case: a GPU with a 16 GiB BAR1, ROM maps on the zero page", defaults: gpu),
            Profile(name: "nic-sriov-4vf", summary: "four SR-IOV VFs with MSI-X BARs, hugetlbfs 2 MiB RAM, one reboot", defaults: nic),
            Profile(name: "viommu-churn", summary: "intel-iommu caching mode: guest IOTLB map/unmap churn (--requests)", defaults: viommu),
            Profile(name: "hugetlb-1g-64g", summary: "64 GiB of 1 GiB hugetlbfs pages, one NIC", defaults: huge),
            Profile(name: "tight-memlock", summary: "RLIMIT_MEMLOCK below guest RAM: the RAM map fails, QEMU exits", defaults: tight),
            Profile(
                name: "intx-no-kvm", summary: "INTx without KVM: each interrupt unmaps and remaps the BARs (--requests)", defaults: intx),
        ]
    }()

    /// The profile called `name`.
    public static func named(_ name: String) -> Profile? { all.first { $0.name == name } }
}
