import Foundation

/// The part of JSON Schema (2020-12) that docs/report.schema.json uses: `$ref` into `$defs`,
/// `type`, `const`, `enum`, `required`, `properties`, `additionalProperties`, `items`,
/// `minItems`, `maxItems`, `minimum`, `minLength`. Enough to hold the report to its schema
/// without a dependency; it refuses a schema keyword it does not know, so it cannot pass
/// vacuously.
public struct JSONSchemaLite {
    let root: [String: Any]

    public init(contentsOf url: URL) throws {
        root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
    }

    static let known: Set<String> = [
        "$schema", "$id", "title", "$defs", "$ref", "type", "const", "enum", "required", "properties",
        "additionalProperties", "items", "minItems", "maxItems", "minimum", "minLength",
    ]

    /// Every place `value` breaks the schema, as "PATH: problem".
    public func problems(_ value: Any) -> [String] {
        var out: [String] = []
        check(value, root, "$", &out)
        return out
    }

    private func check(_ v: Any, _ schema: [String: Any], _ path: String, _ out: inout [String]) {
        for key in schema.keys where !Self.known.contains(key) { out.append("\(path): schema keyword \(key) not supported") }
        if let ref = schema["$ref"] as? String {
            let name = ref.replacingOccurrences(of: "#/$defs/", with: "")
            guard let def = (root["$defs"] as? [String: Any])?[name] as? [String: Any] else {
                out.append("\(path): no definition \(ref)")
                return
            }
            check(v, def, path, &out)
        }
        if let t = schema["type"] {
            let types = (t as? [String]) ?? [t as? String ?? ""]
            if !types.contains(where: { Self.isType(v, $0) }) { out.append("\(path): not \(types.joined(separator: " or "))") }
        }
        if let c = schema["const"], !Self.equal(v, c) { out.append("\(path): not \(c)") }
        if let e = schema["enum"] as? [Any], !e.contains(where: { Self.equal(v, $0) }) { out.append("\(path): \(v) not in enum") }
        if let min = schema["minimum"] as? Int, let n = v as? Int, n < min { out.append("\(path): \(n) below \(min)") }
        if let min = schema["minLength"] as? Int, let s = v as? String, s.count < min { out.append("\(path): shorter than \(min)") }
        if let object = v as? [String: Any] {
            for r in schema["required"] as? [String] ?? [] where object[r] == nil { out.append("\(path): missing \(r)") }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for (k, child) in object {
                if let p = properties[k] as? [String: Any] {
                    check(child, p, path + "." + k, &out)
                } else if let extra = schema["additionalProperties"] {
                    if let allowed = extra as? Bool {
                        if !allowed { out.append("\(path): unexpected key \(k)") }
                    } else if let s = extra as? [String: Any] {
                        check(child, s, path + "." + k, &out)
                    }
                }
            }
        }
        if let array = v as? [Any], !(v is [String: Any]) {
            if let min = schema["minItems"] as? Int, array.count < min { out.append("\(path): fewer than \(min) items") }
            if let max = schema["maxItems"] as? Int, array.count > max { out.append("\(path): more than \(max) items") }
            if let items = schema["items"] as? [String: Any] {
                for (i, child) in array.enumerated() { check(child, items, "\(path)[\(i)]", &out) }
            }
        }
    }

    /// The report holds no booleans, so a number is a number here.
    static func isType(_ v: Any, _ t: String) -> Bool {
        switch t {
        case "object": return v is [String: Any]
        case "array": return v is [Any]
        case "string": return v is String
        case "null": return v is NSNull
        case "integer": return (v as? NSNumber).map { $0.doubleValue == $0.doubleValue.rounded() } ?? false
        case "number": return v is NSNumber
        default: return false
        }
    }

    static func equal(_ a: Any, _ b: Any) -> Bool {
        if let x = a as? NSNumber, let y = b as? NSNumber { return x == y }
        if let x = a as? String, let y = b as? String { return x == y }
        return false
    }
}
