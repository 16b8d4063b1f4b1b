// Package routing holds what apply and the proxy say to each other about a
// container that takes traffic: its address and its role. It is its own
// package so that neither needs the other — apply drives routes through
// apply.Router without linking the proxy's HTTP and TLS stack, and the proxy
// serves targets without linking the Docker client (docs/design.md).
package routing

// Container roles: the values of the orca.role label.
const (
	RoleStable = "stable"
	// RoleCanary marks canary containers: the proxy gives them only the
	// service's canary weight. Every other role is stable.
	RoleCanary = "canary"
)

// Target is one routable container.
type Target struct {
	ContainerID string
	Addr        string // ip:port on the project network; "" without a port
	Role        string // orca.role: RoleStable or RoleCanary
}
