package deploy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// policyUse is what a policy document is attached as.
type policyUse int

const (
	useIdentity     policyUse = iota + 1 // attached to a role/user/group or a managed policy: what a principal may do
	useTrust                             // a role's assume_role_policy: who may become the role
	useKeyPolicy                         // a KMS key policy
	useBucketPolicy                      // an S3 bucket policy
)

// policyAttrs lists every resource attribute that holds a policy, and what it is.
var policyAttrs = map[string]policyUse{
	"aws_iam_policy.policy":           useIdentity,
	"aws_iam_role_policy.policy":      useIdentity,
	"aws_iam_user_policy.policy":      useIdentity,
	"aws_iam_group_policy.policy":     useIdentity,
	"aws_iam_role.assume_role_policy": useTrust,
	"aws_kms_key.policy":              useKeyPolicy,
	"aws_s3_bucket_policy.policy":     useBucketPolicy,
}

// starOnlyActions have no resource-level permissions: AWS accepts only
// Resource "*" for them. Each is allowed with "*" and nothing else is.
var starOnlyActions = map[string]string{
	"ecr:GetAuthorizationToken": "ECR login token; the pull actions are scoped to the repository",
}

// explicitAction is service:Action with no wildcard.
var explicitAction = regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z0-9]+$`)

// policyDocRef returns NAME if e is data.aws_iam_policy_document.NAME(.json|[i].json).
func policyDocRef(e hcl.Expression) (string, bool) {
	vars := e.Variables()
	st, ok := e.(*hclsyntax.ScopeTraversalExpr)
	if !ok || len(vars) != 1 {
		return "", false
	}
	tr := st.Traversal
	if tr.RootName() != "data" || len(tr) < 4 {
		return "", false
	}
	typ, ok1 := tr[1].(hcl.TraverseAttr)
	name, ok2 := tr[2].(hcl.TraverseAttr)
	last, ok3 := tr[len(tr)-1].(hcl.TraverseAttr)
	if !ok1 || !ok2 || !ok3 || typ.Name != "aws_iam_policy_document" || last.Name != "json" {
		return "", false
	}
	return name.Name, true
}

// checkPolicies returns every violation of the IAM rules in m:
//   - every policy attribute is an aws_iam_policy_document (so it can be read
//     here), every document is used, and no AWS-managed policy is attached;
//   - identity statements name explicit actions and explicit resources (no
//     "*", no "service:*", no ARN whose resource part is a wildcard); the only
//     "*" resources are for starOnlyActions;
//   - trust statements only let an AWS service assume the role;
//   - resource policies (key, bucket) allow only explicit actions, except the
//     key policy's statement for the account root, which is AWS's default key
//     policy (it delegates to IAM and grants nothing by itself). Deny
//     statements may be broad: that is what they are for.
func checkPolicies(m *module) []string {
	var problems []string
	problem := func(r hcl.Range, format string, a ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: ", r.Filename, r.Start.Line)+fmt.Sprintf(format, a...))
	}

	uses := map[string][]policyUse{}
	for _, b := range m.blocks("resource") {
		typ := b.Labels[0]
		for name, a := range b.Body.Attributes {
			use, ok := policyAttrs[typ+"."+name]
			if !ok {
				continue
			}
			doc, ok := policyDocRef(a.Expr)
			if !ok {
				problem(a.SrcRange, "%s.%s.%s is not data.aws_iam_policy_document.NAME.json; write policies as policy documents so this test can check them", typ, b.Labels[1], name)
				continue
			}
			uses[doc] = append(uses[doc], use)
		}
		for _, nb := range b.Body.Blocks {
			if typ == "aws_iam_role" && nb.Type == "inline_policy" {
				problem(nb.TypeRange, "aws_iam_role.%s has an inline_policy block; use aws_iam_role_policy with a policy document", b.Labels[1])
			}
		}
		if strings.HasSuffix(typ, "_policy_attachment") {
			if a, ok := b.Body.Attributes["policy_arn"]; ok {
				refOK := false
				for _, tr := range a.Expr.Variables() {
					if tr.RootName() == "aws_iam_policy" {
						refOK = true
					}
				}
				if !refOK {
					problem(a.SrcRange, "%s.%s attaches a policy not defined here (AWS-managed policies use \"*\" resources)", typ, b.Labels[1])
				}
			}
		}
	}

	for _, d := range m.blocks("data", "aws_iam_policy_document") {
		name := d.Labels[1]
		us := uses[name]
		if len(us) == 0 {
			problem(d.TypeRange, "policy document %q is not attached through any known policy attribute", name)
			continue
		}
		for attr := range d.Body.Attributes {
			if attr == "source_policy_documents" || attr == "override_policy_documents" || attr == "source_json" || attr == "override_json" {
				problem(d.Body.Attributes[attr].SrcRange, "policy document %q merges other documents (%s); write the statements out", name, attr)
			}
		}
		for _, use := range us {
			for _, s := range d.Body.Blocks {
				if s.Type == "statement" {
					problems = append(problems, checkStatement(name, use, s)...)
				}
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// checkStatement applies the rules for one statement of a document used as use.
func checkStatement(doc string, use policyUse, s *hclsyntax.Block) []string {
	var problems []string
	at := func(r hcl.Range) string { return fmt.Sprintf("%s:%d: %s: ", r.Filename, r.Start.Line, doc) }
	problem := func(r hcl.Range, format string, a ...any) {
		problems = append(problems, at(r)+fmt.Sprintf(format, a...))
	}
	attrs := s.Body.Attributes

	effect := "Allow"
	if a, ok := attrs["effect"]; ok {
		e, ok := literalString(a.Expr)
		if !ok || (e != "Allow" && e != "Deny") {
			problem(a.SrcRange, "effect must be the literal Allow or Deny")
			return problems
		}
		effect = e
	}
	for _, neg := range []string{"not_actions", "not_resources", "not_principals"} {
		if a, ok := attrs[neg]; ok {
			problem(a.SrcRange, "%s grants everything else; name what is allowed instead", neg)
		}
	}

	var actions []string
	actionsOK := true
	if a, ok := attrs["actions"]; ok {
		items, ok := tupleItems(a.Expr)
		if !ok {
			problem(a.SrcRange, "actions must be a list of literal strings")
			actionsOK = false
		}
		for _, it := range items {
			act, ok := literalString(it)
			if !ok {
				problem(it.Range(), "action must be a literal string")
				actionsOK = false
				continue
			}
			actions = append(actions, act)
		}
	} else {
		problem(s.TypeRange, "statement has no actions")
		actionsOK = false
	}

	// Principals, for trust and resource policies.
	var principalTypes, principalIDs []string
	for _, p := range s.Body.Blocks {
		if p.Type != "principals" {
			continue
		}
		if a, ok := p.Body.Attributes["type"]; ok {
			v, _ := literalString(a.Expr)
			principalTypes = append(principalTypes, v)
		}
		if a, ok := p.Body.Attributes["identifiers"]; ok {
			items, _ := tupleItems(a.Expr)
			for _, it := range items {
				r, _ := render(it)
				principalIDs = append(principalIDs, r)
			}
		}
	}

	switch use {
	case useTrust:
		if strings.Join(actions, ",") != "sts:AssumeRole" {
			problem(s.TypeRange, "trust statement actions = %q; want only sts:AssumeRole", actions)
		}
		if effect != "Allow" || strings.Join(principalTypes, ",") != "Service" {
			problem(s.TypeRange, "trust statement must allow a Service principal only (got %q)", principalTypes)
		}
		for _, id := range principalIDs {
			if !strings.HasSuffix(id, ".amazonaws.com") {
				problem(s.TypeRange, "trust principal %q is not an AWS service", id)
			}
		}
		return problems

	case useKeyPolicy, useBucketPolicy:
		if effect == "Deny" {
			return problems
		}
		rootDelegation := use == useKeyPolicy && len(principalTypes) == 1 && principalTypes[0] == "AWS" &&
			len(principalIDs) == 1 && strings.HasSuffix(principalIDs[0], ":root")
		if rootDelegation {
			return problems
		}
		for _, act := range actions {
			if !explicitAction.MatchString(act) {
				problem(s.TypeRange, "action %q is not explicit (service:Action, no wildcard)", act)
			}
		}
		if use == useKeyPolicy {
			return problems // in a key policy, Resource "*" means "this key"
		}
	}

	// Identity statements (and bucket policy Allows): explicit actions and resources.
	if use == useIdentity {
		for _, act := range actions {
			if !explicitAction.MatchString(act) {
				problem(s.TypeRange, "action %q is not explicit (service:Action, no wildcard)", act)
			}
		}
		if len(principalTypes) > 0 {
			problem(s.TypeRange, "identity policy statements take no principals")
		}
	}
	a, ok := attrs["resources"]
	if !ok {
		problem(s.TypeRange, "statement has no resources")
		return problems
	}
	items, ok := tupleItems(a.Expr)
	if !ok || len(items) == 0 {
		problem(a.SrcRange, "resources must be a non-empty list")
		return problems
	}
	for _, it := range items {
		r, ok := render(it)
		if !ok {
			problem(it.Range(), "resource must be a literal, a reference or a string template")
			continue
		}
		if r == "*" {
			allStarOnly := actionsOK && len(actions) > 0
			for _, act := range actions {
				if _, ok := starOnlyActions[act]; !ok {
					allStarOnly = false
				}
			}
			if !allStarOnly {
				problem(it.Range(), "resource \"*\" for %q; only actions without resource-level permissions (%v) may use it, each in its own statement", actions, keysOf(starOnlyActions))
			}
			continue
		}
		if why := wildcardResource(r); why != "" {
			problem(it.Range(), "resource %q %s", r, why)
		}
	}
	return problems
}

// wildcardResource says why a rendered resource ("X" stands for an
// interpolation) matches more than a named resource, or "" if it does not.
func wildcardResource(r string) string {
	if strings.Contains(r, "X*") {
		return "puts a wildcard right after a name, matching other resources that share the prefix"
	}
	if !strings.HasPrefix(r, "arn:") {
		if r == "X" || strings.HasPrefix(r, "X/") || strings.HasPrefix(r, "X:") {
			return "" // a resource's ARN, maybe narrowed to a path beneath it
		}
		return "is neither an ARN nor a reference to a resource's ARN"
	}
	parts := strings.SplitN(r, ":", 6)
	if len(parts) < 6 {
		return "is not a complete ARN"
	}
	rp := parts[5]
	if rp == "" || strings.HasPrefix(rp, "*") {
		return "covers every resource of the service"
	}
	if i := strings.IndexAny(rp, "/:"); i >= 0 && strings.HasPrefix(rp[i+1:], "*") {
		return "covers every resource of that type"
	}
	if strings.Contains(parts[3]+parts[4], "*") {
		return "covers every region or account"
	}
	return ""
}

// TestIAMPolicies checks every policy in deploy/terraform.
func TestIAMPolicies(t *testing.T) {
	m := terraform(t)
	docs := m.blocks("data", "aws_iam_policy_document")
	if len(docs) < 4 {
		t.Fatalf("found %d policy documents; the execution role, task role, trust and key policies should all be policy documents", len(docs))
	}
	for _, p := range checkPolicies(m) {
		t.Error(p)
	}
}

// TestIAMCheckCatchesWildcards runs checkPolicies on policies that break each rule.
func TestIAMCheckCatchesWildcards(t *testing.T) {
	m := parseSource(t, `
data "aws_iam_policy_document" "task" {
  statement {
    actions   = ["kinesis:GetRecords", "s3:*"]
    resources = [aws_kinesis_stream.s.arn]
  }
  statement {
    actions   = ["dynamodb:GetItem"]
    resources = ["*"]
  }
  statement {
    actions   = ["glue:GetTable"]
    resources = ["arn:aws:glue:us-west-2:123456789012:table/*"]
  }
  statement {
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::*"]
  }
  statement {
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.b.arn}*"]
  }
  statement {
    not_actions = ["iam:CreateUser"]
    resources   = [aws_kinesis_stream.s.arn]
  }
  statement {
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.b.arn}/warehouse/*"]
  }
}
resource "aws_iam_role_policy" "task" {
  policy = data.aws_iam_policy_document.task.json
}
resource "aws_iam_role_policy" "inline" {
  policy = jsonencode({ Statement = [{ Action = "*", Resource = "*" }] })
}
resource "aws_iam_role_policy_attachment" "managed" {
  policy_arn = "arn:aws:iam::aws:policy/AdministratorAccess"
}
data "aws_iam_policy_document" "orphan" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["x"]
  }
}
`)
	got := strings.Join(checkPolicies(m), "\n")
	for _, want := range []string{
		`action "s3:*" is not explicit`,
		`resource "*" for ["dynamodb:GetItem"]`,
		`covers every resource of that type`,
		`covers every resource of the service`,
		`wildcard right after a name`,
		`not_actions grants everything else`,
		`statement has no actions`,
		`aws_iam_role_policy.inline.policy is not data.aws_iam_policy_document`,
		`attaches a policy not defined here`,
		`"orphan" is not attached`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no problem containing %q in:\n%s", want, got)
		}
	}
	for _, notWant := range []string{`for ["ecr:GetAuthorizationToken"]`, "warehouse/*"} {
		if strings.Contains(got, notWant) {
			t.Errorf("problem mentions %q, which is allowed:\n%s", notWant, got)
		}
	}
}
