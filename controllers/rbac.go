package controllers

// Permissions the operator needs, rendered into config/rbac/role.yaml by controller-gen:
// the Roster kinds, Secrets read by name only (credentials: never listed or watched,
// which would hand every Secret's data to the operator), ConfigMaps (HR exports read,
// the inbound SCIM groups of a DirectorySync written: config/rbac/configmap_policy.yaml
// limits writes to the ConfigMaps Roster owns), and events. Nothing else, and no
// wildcards.
//
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users;roles;appassignments;appconnections;directorysyncs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users/status;roles/status;appassignments/status;appconnections/status;directorysyncs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users/finalizers;roles/finalizers;appassignments/finalizers;appconnections/finalizers;directorysyncs/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
