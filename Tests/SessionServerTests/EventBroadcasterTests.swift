import SessionCore
import Testing

@testable import SessionServer

struct EventBroadcasterTests {
    /// The subscriber limit is decided when a subscription is accepted: a second one at the limit is
    /// refused (429) even before the first stream has started, instead of being answered 200 and cut
    /// off when its stream starts. A slot whose stream never starts (a `HEAD` request) is given back.
    @Test func acceptedSubscriptionsHoldTheirSlotUntilTheResponseIsDropped() {
        let store = SessionStore()
        let broadcaster = EventBroadcaster(
            feed: LocalEventFeed(events: store.events),
            events: store.events,
            maximumSubscribers: 2
        )
        let second = broadcaster.subscribe()
        do {
            let first = broadcaster.subscribe()
            #expect(first != nil && second != nil)
            #expect(broadcaster.subscribe() == nil, "a third subscription was accepted over a limit of 2")
            #expect(broadcaster.subscriberCount == 0, "no stream has started")
            withExtendedLifetime(first) {}
        }
        // `first` is gone without its stream having started, as for HEAD.
        let third = broadcaster.subscribe()
        #expect(third != nil, "the slot of a response that never started was not given back")
        #expect(broadcaster.subscribe() == nil)
        withExtendedLifetime((second, third)) {}
    }
}
