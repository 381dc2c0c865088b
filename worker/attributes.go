package worker

import (
	"context"
	"fmt"
	"maps"
	"slices"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/goferproxy/gofer/workflows"
)

// EnsureSearchAttributes registers, as Keyword, the search attributes gofer's fetches carry that
// namespace lacks (workflows.SearchAttributes): a fetch that upserts an unknown one fails its
// workflow task again and again. Where registering is not allowed (some hosted Temporal), the
// error says which attributes an operator must add.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	missing, err := missingAttributes(ctx, c, namespace)
	if err != nil || len(missing) == 0 {
		return err
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		// Another worker starting at the same time may have added them first.
		if again, lerr := missingAttributes(ctx, c, namespace); lerr == nil && len(again) == 0 {
			return nil
		}
		return fmt.Errorf("registering the search attributes %v in namespace %q (register them as Keyword by hand if this is not allowed): %w", slices.Sorted(maps.Keys(missing)), namespace, err)
	}
	return nil
}

// missingAttributes lists the search attributes of workflows.SearchAttributes that namespace
// lacks, and fails if one it has is not a Keyword.
func missingAttributes(ctx context.Context, c client.Client, namespace string) (map[string]enumspb.IndexedValueType, error) {
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("listing the search attributes of namespace %q: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range workflows.SearchAttributes {
		t, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		case t != enumspb.INDEXED_VALUE_TYPE_KEYWORD:
			return nil, fmt.Errorf("search attribute %s of namespace %q is %s; gofer needs a Keyword", name, namespace, t)
		}
	}
	return missing, nil
}
