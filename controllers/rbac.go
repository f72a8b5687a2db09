package controllers

// Permissions the operator needs, rendered into config/rbac/role.yaml by controller-gen:
// the Roster kinds, read-only Secrets (credentials), ConfigMaps (HR exports read, the
// inbound SCIM groups of a DirectorySync written), and events. Nothing else, and no
// wildcards.
//
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users;roles;appassignments;appconnections;directorysyncs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users/status;roles/status;appassignments/status;appconnections/status;directorysyncs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=identity.roster.dev,resources=users/finalizers;roles/finalizers;appassignments/finalizers;appconnections/finalizers;directorysyncs/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
