import ArgumentParser
import TraceFormat
import TraceGen

/// `pinreplay generate`: synthetic QEMU boots with assigned devices.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate the trace of a QEMU boot with assigned devices.",
        discussion: """
            The same profile, parameters and seed always give the same bytes. Output is binary \
            unless --text is given or the file name ends in .txt; - writes standard output.
            """)

    @Flag(help: "List the profiles with their defaults.") var list = false
    @Option(help: "Profile name (see --list).", completion: .list(Profile.all.map(\.name))) var profile: String?
    @Option(help: "Guest RAM size, e.g. 16G.") var ram: String?
    @Option(help: "RAM backing.") var backing: Backing?
    @Option(help: "An assigned device: a preset (gpu, nic, vf) or NAME:barN=SIZE[:msix[@OFF]],... (repeatable; replaces the profile's).")
    var device: [String] = []
    @Option(help: "Guest reboots between boot and shutdown.") var reboots: Int?
    @Option(help: "Seed for physical placement, host BAR addresses and the vIOMMU request mix.") var seed: String?
    @Option(help: "vIOMMU profiles: IOTLB maps; INTx profile: interrupts.") var requests: Int?
    @Option(help: "Machine type (pc is i440fx).") var machine: Machine?
    @Option(help: "RLIMIT_MEMLOCK: a size or 'unlimited' (default: guest RAM + 1 GiB, as libvirt).") var memlock: String?
    @Option(help: "DIMM hotplug: size plugged after boot and unplugged before shutdown.") var hotplug: String?
    @Flag(help: "Align BAR mmaps to min(BAR size, 1 GiB), as QEMU 9.2 and later do.") var alignBars = false
    @Flag(help: "Map guest RAM only: no ROM windows, no PAM shadowing (a firmware-less boot).") var ramOnly = false
    @Option(name: .shortAndLong, help: "Output file (default PROFILE.vptr, or .txt with --text); - for stdout.", completion: .file())
    var output: String?
    @Flag(help: "Write the text form.") var text = false

    func run() throws {
        if list {
            for p in Profile.all {
                let d = p.defaults
                print("\(p.name.padded(16)) \(p.summary)")
                var facts = "ram \(humanBytes(d.ram)), \(d.backing.rawValue), devices \(d.devices.map(\.name).joined(separator: ","))"
                if d.reboots > 0 { facts += ", reboots \(d.reboots)" }
                if d.requests > 0 { facts += ", requests \(d.requests)" }
                if let m = d.memlock { facts += ", memlock \(humanBytes(m))" }
                print("\("".padded(16)) \(facts)")
            }
            print("devices: " + DeviceSpec.presets.map { "\($0.name) (\($0.summary))" }.joined(separator: "; "))
            return
        }
        guard let name = profile else { throw UsageError("give --profile NAME (or --list)") }
        guard let p = Profile.named(name) else {
            throw UsageError("unknown profile '\(name)'; profiles: \(Profile.all.map(\.name).joined(separator: ", "))")
        }
        var c = p.defaults
        do throws(GenError) {
            if let ram { c.ram = try parseSize(ram, what: "--ram") }
            if let backing { c.backing = backing }
            if !device.isEmpty { c.devices = try device.map { d throws(GenError) in try DeviceSpec.parse(d) } }
            if let reboots { c.reboots = reboots }
            if let seed {
                guard let s = parseTraceNumber(seed) else { throw GenError("--seed must be a number, not '\(seed)'") }
                c.seed = s
            }
            if let requests { c.requests = requests }
            if let machine { c.machine = machine }
            if let memlock { c.memlock = memlock == "unlimited" ? .max : try parseSize(memlock, what: "--memlock") }
            if let hotplug { c.hotplug = try parseSize(hotplug, what: "--hotplug") }
            c.alignBARs = alignBars
            c.ramOnly = ramOnly
        } catch {
            throw UsageError(error.message)
        }
        let generator: BootGenerator
        do {
            generator = try BootGenerator(c)
        } catch {
            throw UsageError(error.message)
        }
        let path = output ?? "\(name).\(text ? "txt" : "vptr")"
        let form: TraceForm = text || path.hasSuffix(".txt") ? .text : .binary
        let writer = try TraceWriter(path: path, form: form)
        var g = generator
        try g.run { s throws(TraceError) in try writer.write(s) }
        try writer.finish()
        if path != "-" {
            printError("\(path): \(writer.count) statements, \(writer.bytesWritten) bytes (\(form.rawValue))")
        }
    }
}

// The option values --help and shell completion list.
extension Backing: ExpressibleByArgument {}
extension Machine: ExpressibleByArgument {}
