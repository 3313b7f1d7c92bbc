import ArgumentParser
struct ReplayCommand: ParsableCommand { static let configuration = CommandConfiguration(commandName: "replay") }
struct GenerateCommand: ParsableCommand { static let configuration = CommandConfiguration(commandName: "generate") }
