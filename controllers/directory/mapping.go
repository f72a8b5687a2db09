// Package directory mirrors a source of truth (a directory, an identity provider, an HR
// export) into Users: each source record is mapped to a User with CEL expressions and
// written with server-side apply, so that fields a person sets on the same User are
// kept; Users whose record vanishes, or is disabled, are suspended at once and deleted
// after a grace; a sync that would take too many away waits for approval.
package directory

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Default mappings per source, as target ← expression over `record`. A DirectorySync's
// spec.mapping adds to and overrides them.
var (
	ldapMapping = mappings(map[string]string{
		"userName":                  `record.userName`,
		"externalID":                `record.id`,
		"name.givenName":            `has(record.givenName) ? record.givenName : ""`,
		"name.familyName":           `has(record.sn) ? record.sn : ""`,
		"displayName":               `has(record.displayName) ? record.displayName : (has(record.cn) ? record.cn : "")`,
		"emails":                    `has(record.all.mail) ? record.all.mail : []`,
		"title":                     `has(record.title) ? record.title : ""`,
		"department":                ldapDepartment,
		"location":                  `has(record.l) ? record.l : ""`,
		"employeeType":              `has(record.employeeType) ? record.employeeType : ""`,
		"manager":                   `has(record.manager) ? record.manager : ""`,
		"groups":                    `record.groups`,
		"state":                     `record.disabled ? "Suspended" : "Active"`,
		"labels." + LabelDepartment: ldapDepartment,
		"labels." + LabelLocation:   `has(record.l) ? record.l : ""`,
	})
	scimMapping = mappings(map[string]string{
		"userName":                  `record.userName`,
		"externalID":                `record.id`, // the store's own id: an identity provider may leave externalId out of a PUT
		"name.givenName":            `has(record.name) && has(record.name.givenName) ? record.name.givenName : ""`,
		"name.familyName":           `has(record.name) && has(record.name.familyName) ? record.name.familyName : ""`,
		"displayName":               `has(record.displayName) ? record.displayName : ""`,
		"emails":                    `has(record.emails) ? record.emails : []`,
		"title":                     `has(record.title) ? record.title : ""`,
		"department":                scimEnterprise("department"),
		"employeeType":              `has(record.userType) ? record.userType : ""`,
		"manager":                   `"` + enterpriseUser + `" in record && "manager" in record["` + enterpriseUser + `"] && "value" in record["` + enterpriseUser + `"].manager ? record["` + enterpriseUser + `"].manager.value : ""`,
		"groups":                    `record.groups`,
		"state":                     `record.disabled ? "Suspended" : "Active"`,
		"labels." + LabelDepartment: scimEnterprise("department"),
	})
	// Google Workspace and Entra ID records name their attributes as Users do.
	googleMapping = mappings(suiteMapping, map[string]string{"attributes.orgUnitPath": `record.orgUnitPath`})
	entraMapping  = mappings(suiteMapping)
	hrisMapping   = mappings(map[string]string{
		"userName":                  `has(record.userName) ? record.userName : (has(record.email) ? record.email : "")`,
		"externalID":                `record.id`,
		"name.givenName":            `has(record.firstName) ? record.firstName : (has(record.givenName) ? record.givenName : "")`,
		"name.familyName":           `has(record.lastName) ? record.lastName : (has(record.familyName) ? record.familyName : "")`,
		"displayName":               `has(record.displayName) ? record.displayName : ""`,
		"emails":                    `has(record.email) && record.email != "" ? [record.email] : []`,
		"title":                     `has(record.title) ? record.title : ""`,
		"department":                `has(record.department) ? record.department : ""`,
		"location":                  `has(record.location) ? record.location : ""`,
		"employeeType":              `has(record.employeeType) ? record.employeeType : ""`,
		"manager":                   `has(record.manager) ? record.manager : ""`,
		"groups":                    `record.groups`,
		"activeFrom":                `has(record.hireDate) ? record.hireDate : (has(record.startDate) ? record.startDate : "")`,
		"activeUntil":               `has(record.terminationDate) ? record.terminationDate : (has(record.endDate) ? record.endDate : "")`,
		"state":                     `has(record.status) && record.status.lowerAscii() in ["inactive", "terminated", "suspended", "disabled"] ? "Suspended" : "Active"`,
		"labels." + LabelDepartment: `has(record.department) ? record.department : ""`,
		"labels." + LabelLocation:   `has(record.location) ? record.location : ""`,
	})
)

// suiteMapping is the default mapping of the sources whose records name attributes as
// Users do.
var suiteMapping = map[string]string{
	"userName":                  `record.userName`,
	"externalID":                `record.id`,
	"name.givenName":            `has(record.givenName) ? record.givenName : ""`,
	"name.familyName":           `has(record.familyName) ? record.familyName : ""`,
	"displayName":               `has(record.displayName) ? record.displayName : ""`,
	"emails":                    `has(record.email) ? [record.email] : []`,
	"title":                     `has(record.title) ? record.title : ""`,
	"department":                `has(record.department) ? record.department : ""`,
	"location":                  `has(record.location) ? record.location : ""`,
	"employeeType":              `has(record.employeeType) ? record.employeeType : ""`,
	"manager":                   `has(record.manager) ? record.manager : ""`,
	"groups":                    `record.groups`,
	"state":                     `record.disabled ? "Suspended" : "Active"`,
	"labels." + LabelDepartment: `has(record.department) ? record.department : ""`,
	"labels." + LabelLocation:   `has(record.location) ? record.location : ""`,
}

const (
	ldapDepartment = `has(record.department) ? record.department : (has(record.departmentNumber) ? record.departmentNumber : "")`
	enterpriseUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// Labels the default mappings put on Users, so that Roles can select on them.
const (
	LabelDepartment = "identity.roster.dev/department"
	LabelLocation   = "identity.roster.dev/location"
)

func scimEnterprise(attr string) string {
	return fmt.Sprintf(`"%s" in record && "%s" in record["%s"] ? record["%s"].%s : ""`, enterpriseUser, attr, enterpriseUser, enterpriseUser, attr)
}

// mappings turns target → expression maps into a mapping, a later map's entries
// overriding an earlier one's.
func mappings(maps ...map[string]string) []identityv1alpha1.ExpressionMapping {
	merged := map[string]string{}
	for _, m := range maps {
		for target, expr := range m {
			merged[target] = expr
		}
	}
	out := make([]identityv1alpha1.ExpressionMapping, 0, len(merged))
	for target, expr := range merged {
		out = append(out, identityv1alpha1.ExpressionMapping{Target: target, Expression: expr})
	}
	return out
}

// DefaultMapping is the default mapping for a source kind.
func DefaultMapping(source string) []identityv1alpha1.ExpressionMapping {
	switch source {
	case "ldap":
		return ldapMapping
	case "scim":
		return scimMapping
	case "hris":
		return hrisMapping
	case "googleWorkspace":
		return googleMapping
	case "microsoftGraph":
		return entraMapping
	}
	return nil
}

var nameChars = regexp.MustCompile(`[^a-z0-9.-]+`)

// objectName is a stable, valid object name from a source name and an immutable id,
// different for different ids: an id that is a valid name already is kept as it is;
// any other (letter case, characters names cannot hold, length) keeps what it can,
// followed by a hash of the whole id, so that E-10/ÄB and E-10/ÖB stay two people.
func objectName(prefix, id string) string {
	clean := cleanName(id)
	if clean == id && len(prefix)+1+len(id) <= 253 {
		return prefix + "-" + id
	}
	return hashedName(prefix, clean, id)
}

// cleanName is s lower-cased, with what an object name cannot hold turned into "-".
func cleanName(s string) string {
	return strings.Trim(nameChars.ReplaceAllString(strings.ToLower(s), "-"), "-.")
}

// hashedName is prefix-clean-<hash of id>, clean shortened to fit.
func hashedName(prefix, clean, id string) string {
	sum := sha256.Sum256([]byte(id))
	hash := hex.EncodeToString(sum[:5])
	clean = strings.Trim(truncate(clean, 253-len(prefix)-len(hash)-2), "-.")
	if clean == "" {
		return prefix + "-" + hash
	}
	return prefix + "-" + clean + "-" + hash
}

var labelChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// labelValue turns any string into a valid label value ("" if nothing is left).
func labelValue(s string) string {
	v := labelChars.ReplaceAllString(s, "-")
	if len(v) > 63 {
		v = v[:63]
	}
	return strings.Trim(v, "-._")
}

// date reads RFC 3339 timestamps and plain dates (2027-06-30, taken as UTC midnight).
func date(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339, "2006-01-02", "2006-01-02T15:04:05", "01/02/2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}
