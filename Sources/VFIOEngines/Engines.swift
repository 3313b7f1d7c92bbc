import VFIOModel

/// The registry of engines: adding a kernel version is one file and one line here.
public enum Engines {
    /// Every engine, in the order `--engines all` runs them.
    public static let all: [any Engine] = [
        V4_16(),
        RFCv1(),
        V4_17_rc1(),
        Fixed(),
        V5_15(),
        V6_1(),
        V6_12(),
        V6_15(),
        V6_18(),
        IOMMUFD(),
        IOMMUFDCompat(),
    ]

    /// Named groups `--engines` accepts besides `all`.
    public static let groups: [String: [String]] = [
        "later": ["v4.16", "fixed", "v5.15", "v6.1", "v6.12", "v6.15", "v6.18"],
        "iommufd": ["v6.18", "iommufd", "iommufd-compat"],
    ]

    /// The engines `replay` compares when none are named: v4.16 against v4.17-rc1.
    public static let defaultNames = ["old", "patched"]

    /// The engine with this canonical name or alias.
    public static func named(_ name: String) -> (any Engine)? {
        all.first { $0.name == name || $0.aliases.contains(name) }
    }

    /// Every accepted spelling, for error messages: `v4.16 (old), rfc-v1, ...`.
    public static var spellings: String {
        all.map { e in e.aliases.isEmpty ? e.name : "\(e.name) (\(e.aliases.joined(separator: ", ")))" }
            .joined(separator: ", ")
    }
}
