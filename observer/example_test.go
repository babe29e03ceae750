package observer_test

import (
	"fmt"

	"github.com/canoe-raft/canoe/observer"
)

func Example() {
	var reg observer.Registry // in canoe, the node owns this

	// Watch leader changes only, with room for a burst of 8.
	ch := make(chan observer.Observation, 8)
	o := observer.New(ch, func(ob observer.Observation) bool {
		_, ok := ob.(observer.LeaderChanged)
		return ok
	})
	reg.Register(o)
	defer reg.Unregister(o)

	// What the node does as events happen; Notify never blocks.
	reg.Notify(observer.StateChanged{From: observer.Follower, To: observer.Candidate})
	reg.Notify(observer.LeaderChanged{LeaderID: 2, Term: 5})
	reg.Notify(observer.LeaderChanged{LeaderID: 0, Term: 6})

	for range 2 {
		switch ob := (<-ch).(type) {
		case observer.LeaderChanged:
			if ob.LeaderID == 0 {
				fmt.Printf("term %d: no leader\n", ob.Term)
			} else {
				fmt.Printf("term %d: leader is %d\n", ob.Term, ob.LeaderID)
			}
		default:
			fmt.Printf("unexpected %T\n", ob)
		}
	}
	fmt.Println("dropped:", o.Dropped())
	// Output:
	// term 5: leader is 2
	// term 6: no leader
	// dropped: 0
}
