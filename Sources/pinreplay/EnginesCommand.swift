import ArgumentParser
import TraceFormat
import VFIOEngines

/// `pinreplay engines`: the registered kernel versions.
struct EnginesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engines", abstract: "List the engines (kernel versions of vfio_pin_pages_remote()).")

    func run() {
        for e in Engines.all {
            let alias = e.aliases.isEmpty ? "" : " (\(e.aliases.joined(separator: ", ")))"
            print("\((e.name + alias).padded(22)) \(e.kernels)")
            print("\("".padded(22)) \(e.summary)")
        }
        for (group, names) in Engines.groups.sorted(by: { $0.key < $1.key }) {
            print("\(("group " + group).padded(22)) \(names.joined(separator: ","))")
        }
        print("\("all".padded(22)) every engine above, in this order")
    }
}
