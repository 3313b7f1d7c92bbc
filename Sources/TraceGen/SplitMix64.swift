/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast generator whose sequence is fixed by its
/// seed on every platform and toolchain. The generator draws only from here, and never through
/// the standard library's `random(in:using:)`, whose algorithm is not promised to stay put.
public struct SplitMix64 {
    private var state: UInt64

    /// The generator seeded with `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0..<n` (n > 0), by the multiply-high method.
    public mutating func below(_ n: UInt64) -> UInt64 {
        precondition(n > 0, "below(0)")
        return next().multipliedFullWidth(by: n).high
    }

    /// Uniform in `lo...hi`.
    public mutating func inRange(_ lo: UInt64, _ hi: UInt64) -> UInt64 {
        precondition(lo <= hi, "empty range \(lo)...\(hi)")
        return hi - lo == UInt64.max ? next() : lo + below(hi - lo + 1)
    }

    /// A power of two between `2^loLog` and `2^hiLog`, each exponent equally likely: sizes
    /// spread over orders of magnitude.
    public mutating func logUniform(_ loLog: Int, _ hiLog: Int) -> UInt64 {
        1 << inRange(UInt64(loLog), UInt64(hiLog))
    }

    /// True with probability `percent`/100.
    public mutating func chance(_ percent: UInt64) -> Bool { below(100) < percent }
}
