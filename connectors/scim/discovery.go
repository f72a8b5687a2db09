package scim

// resourceTypes is the /ResourceTypes document (RFC 7643 §6).
func resourceTypes() []map[string]any {
	return []map[string]any{
		{
			"schemas": []any{SchemaResourceType}, "id": "User", "name": "User", "endpoint": "/Users",
			"description": "User Account", "schema": SchemaUser,
			"schemaExtensions": []any{map[string]any{"schema": SchemaEnterpriseUser, "required": false}},
			"meta":             map[string]any{"resourceType": "ResourceType", "location": "/ResourceTypes/User"},
		},
		{
			"schemas": []any{SchemaResourceType}, "id": "Group", "name": "Group", "endpoint": "/Groups",
			"description": "Group", "schema": SchemaGroup,
			"meta": map[string]any{"resourceType": "ResourceType", "location": "/ResourceTypes/Group"},
		},
	}
}

// attr describes one attribute for /Schemas (RFC 7643 §7).
func attr(name, typ string, opts ...func(map[string]any)) map[string]any {
	a := map[string]any{
		"name": name, "type": typ, "multiValued": false, "required": false, "caseExact": false,
		"mutability": "readWrite", "returned": "default", "uniqueness": "none",
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

func required(a map[string]any)    { a["required"] = true }
func multiValued(a map[string]any) { a["multiValued"] = true }
func caseExactAttr(a map[string]any) {
	a["caseExact"] = true
}
func uniqueServer(a map[string]any) { a["uniqueness"] = "server" }
func readOnly(a map[string]any)     { a["mutability"] = "readOnly" }
func writeOnly(a map[string]any) {
	a["mutability"], a["returned"] = "writeOnly", "never"
}
func subAttributes(subs ...map[string]any) func(map[string]any) {
	return func(a map[string]any) { a["subAttributes"] = subs }
}

func multiValuedComplex(name string, subs ...map[string]any) map[string]any {
	return attr(name, "complex", multiValued, subAttributes(subs...))
}

func schemaDoc(id, name, description string, attrs ...map[string]any) map[string]any {
	return map[string]any{
		"schemas": []any{SchemaSchema}, "id": id, "name": name, "description": description,
		"attributes": attrs, "meta": map[string]any{"resourceType": "Schema", "location": "/Schemas/" + id},
	}
}

// schemas is the /Schemas document for the attributes Roster reads and writes.
func schemas() []map[string]any {
	valueTypePrimary := []map[string]any{
		attr("value", "string"), attr("display", "string"), attr("type", "string"), attr("primary", "boolean"),
	}
	return []map[string]any{
		schemaDoc(SchemaUser, "User", "User Account",
			attr("userName", "string", required, uniqueServer),
			attr("externalId", "string", caseExactAttr),
			attr("name", "complex", subAttributes(
				attr("formatted", "string"), attr("familyName", "string"), attr("givenName", "string"),
				attr("middleName", "string"), attr("honorificPrefix", "string"), attr("honorificSuffix", "string"))),
			attr("displayName", "string"), attr("nickName", "string"), attr("title", "string"),
			attr("userType", "string"), attr("preferredLanguage", "string"), attr("locale", "string"),
			attr("timezone", "string"), attr("active", "boolean"), attr("password", "string", writeOnly),
			multiValuedComplex("emails", valueTypePrimary...),
			multiValuedComplex("phoneNumbers", valueTypePrimary...),
			multiValuedComplex("groups", attr("value", "string", readOnly), attr("display", "string", readOnly)),
		),
		schemaDoc(SchemaEnterpriseUser, "EnterpriseUser", "Enterprise User",
			attr("employeeNumber", "string"), attr("costCenter", "string"), attr("organization", "string"),
			attr("division", "string"), attr("department", "string"),
			attr("manager", "complex", subAttributes(attr("value", "string"), attr("displayName", "string", readOnly))),
		),
		schemaDoc(SchemaGroup, "Group", "Group",
			attr("displayName", "string", required),
			attr("externalId", "string", caseExactAttr),
			multiValuedComplex("members", attr("value", "string"), attr("display", "string"), attr("type", "string")),
		),
	}
}

// neverReturned lists, by schema ("" for the core schema of a resource), the attributes
// the schemas mark returned "never" or mutability "writeOnly" (RFC 7643 §7: the
// password): a server never answers them, and Roster keeps them nowhere.
var neverReturned = func() map[string][]string {
	out := map[string][]string{}
	for _, doc := range schemas() {
		id, _ := doc["id"].(string)
		if id == SchemaUser || id == SchemaGroup {
			id = ""
		}
		for _, a := range doc["attributes"].([]map[string]any) {
			if a["returned"] == "never" || a["mutability"] == "writeOnly" {
				out[id] = append(out[id], a["name"].(string))
			}
		}
	}
	return out
}()

// DropNeverReturned removes from r, in place, every attribute the schemas say is never
// returned, and returns r.
func DropNeverReturned(r Resource) Resource {
	for schema, names := range neverReturned {
		container := map[string]any(r)
		if schema != "" {
			k, _ := findKey(r, schema)
			var ok bool
			if container, ok = r[k].(map[string]any); !ok {
				continue
			}
		}
		for _, name := range names {
			if k, ok := findKey(container, name); ok {
				delete(container, k)
			}
		}
	}
	return r
}
