/// A first-in, first-out queue in an array whose dead front is dropped once it is the larger
/// part (each element moves at most once): the eviction order of the detector's hosts and of the
/// merged asset view.
struct FIFOQueue<Element> {
    private var elements: [Element]
    private var head = 0

    init(_ elements: [Element] = []) { self.elements = elements }

    var count: Int { elements.count - head }

    mutating func append(_ element: Element) { elements.append(element) }

    mutating func popFirst() -> Element? {
        guard head < elements.count else { return nil }
        let first = elements[head]
        head += 1
        if head >= 1024 && head * 2 >= elements.count {
            elements.removeFirst(head)
            head = 0
        }
        return first
    }
}
