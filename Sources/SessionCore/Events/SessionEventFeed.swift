/// The ordered events of a backend, with ids that subscribers of the event stream resume from
/// (`Last-Event-ID`). Every observer sees the same events in the same order.
///
/// - ``LocalEventFeed``: the events of one in-process store, numbered as they happen; ids are good
///   for the life of the process.
/// - A shared store (Redis): the merged event streams of every partition, the same order on every
///   instance; ids name positions in the store, so a subscriber may resume on another instance.
public protocol SessionEventFeed: AnyObject, Sendable {
    /// Calls `observer` with every item from now on, in order, one at a time.
    func observe(_ observer: @escaping @Sendable (SessionFeedItem) -> Void)
    /// The text id of a position (the `id:` line of an event-stream frame).
    func eventID(of position: SessionEventPosition) -> String
    /// The position an id names, or `nil` when the id is not one of this feed's (another process's,
    /// another store's, or not an id at all).
    func position(ofEventID id: String) -> SessionEventPosition?
    /// Whether the events delivered are worth keeping for resuming before anyone subscribed here
    /// (`true` for a shared store: a subscriber of another instance may resume here).
    var keepsHistoryFromStart: Bool { get }
    /// How far ahead of the last delivered position a resumed id may be and still be waited for
    /// (another instance delivered it a moment earlier); `nil`: never (the id is unknown).
    var resumeAheadAllowance: UInt64? { get }
}

/// Where an event stands in a feed's order: `(major, minor, partition)`, compared in that order.
public struct SessionEventPosition: Comparable, Hashable, Sendable {
    public var major: UInt64
    public var minor: UInt64
    public var partition: UInt32

    public init(major: UInt64, minor: UInt64 = 0, partition: UInt32 = 0) {
        self.major = major
        self.minor = minor
        self.partition = partition
    }

    /// Before every event.
    public static let zero = SessionEventPosition(major: 0)

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor, lhs.partition) < (rhs.major, rhs.minor, rhs.partition)
    }
}

/// What a ``SessionEventFeed`` delivers.
public enum SessionFeedItem: Sendable {
    /// An event at its position.
    case event(SessionEvent, SessionEventPosition)
    /// Nothing up to this position can be replayed any more (events were lost, or history starts
    /// here): a subscriber that resumes from before it is told of a gap.
    case reset(SessionEventPosition)
}
