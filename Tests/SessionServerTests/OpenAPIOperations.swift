import Foundation

/// The operations of the repository's `openapi.yaml`, read line by line (the document keeps one key a
/// line under `paths:`: two spaces before a path, four before a method, six before its keys, eight
/// before a response status).
enum OpenAPIOperations {
    struct Operation: Hashable, CustomStringConvertible {
        var template: String
        var method: String
        var operationID: String
        var successStatus: Int
        /// `open` (`security: []`), `administration` (`security: [{adminToken: []}]`) or `application`
        /// (the document's default, the API token).
        var scope: String

        var description: String { "\(method) \(template) \(operationID) \(successStatus) \(scope)" }
    }

    static func read() throws -> Set<Operation> {
        let repository = String(#filePath).components(separatedBy: "/Tests/")[0]
        let text = try String(contentsOfFile: repository + "/openapi.yaml", encoding: .utf8)
        var operations: Set<Operation> = []
        var inPaths = false
        var template: String?
        var current: Operation?
        func flush() {
            if let operation = current { operations.insert(operation) }
            current = nil
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if !line.hasPrefix(" ") && !line.isEmpty {
                flush()
                inPaths = line == "paths:"
                continue
            }
            guard inPaths else { continue }
            let indent = line.prefix { $0 == " " }.count
            let content = line.trimmingCharacters(in: .whitespaces)
            switch indent {
            case 2:
                flush()
                template = String(content.dropLast())  // "/v1/sessions:"
            case 4 where ["get:", "put:", "post:", "delete:", "patch:"].contains(content):
                flush()
                current = Operation(
                    template: template ?? "",
                    method: content.dropLast().uppercased(),
                    operationID: "",
                    successStatus: 0,
                    scope: "application"
                )
            case 6 where content.hasPrefix("operationId:"):
                current?.operationID = content.dropFirst("operationId:".count).trimmingCharacters(in: .whitespaces)
            case 6 where content == "security: []":
                current?.scope = "open"
            case 6 where content == "security: [{adminToken: []}]":
                current?.scope = "administration"
            case 8 where content.hasPrefix("'2"):
                let status = Int(content.dropFirst().prefix(3)) ?? 0
                if let success = current?.successStatus, success == 0 || status < success {
                    current?.successStatus = status
                }
            default:
                break
            }
        }
        flush()
        return operations
    }
}
