package analysis

// OK is the severity of a check that passed. `vpn-gateway doctor` reports
// them so its output shows what was checked; `vpn doctor` reports problems
// only.
const OK = "ok"

// NewReport wraps findings (kept in their order) in a Report and counts
// them: Healthy when there is no error and no warning.
func NewReport(os string, findings []Finding) Report {
	if findings == nil {
		findings = []Finding{}
	}
	r := Report{Schema: Schema, OS: os, Findings: findings}
	for _, f := range findings {
		switch f.Severity {
		case Error:
			r.Summary.Errors++
		case Warning:
			r.Summary.Warnings++
		case OK:
			r.Summary.Passed++
		default:
			r.Summary.Infos++
		}
	}
	r.Summary.Healthy = r.Summary.Errors+r.Summary.Warnings == 0
	return r
}
