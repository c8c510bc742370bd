// Command tollgate-test-apiserver is the stock apiextensions-apiserver (same flags, same
// storage, same CRD handling) with two changes for tests that drive it with kubectl:
//
//  1. It sets the generic server's OpenAPI v2 config. The stock options (pkg/cmd/server/options)
//     set only OpenAPIV3Config, and pkg/apiserver starts BOTH CRD OpenAPI controllers (v2 and
//     v3) only when StaticOpenAPISpec != nil, i.e. only when a v2 config exists. So the stock
//     binary publishes no CRD schemas at all and `kubectl apply` cannot validate. With the v2
//     config, /openapi/v2 and /openapi/v3 both carry every CRD's schema.
//
//  2. It turns discovery on again. apiserver.Config.Complete() forces EnableDiscovery=false
//     (inside kube-apiserver the aggregator serves /apis), so the stock server answers /apis with
//     404. We set it back to true after Complete(): the generic server then serves /apis, whose
//     aggregated form (what kubectl uses) lists every CRD group, fed by the CRD discovery
//     controller. /api (core/v1) still does not exist: client-go treats its 404 as "no legacy
//     group". The unaggregated /apis list shows only apiextensions.k8s.io.
//
// Otherwise it takes the steps the stock command (pkg/cmd/server/server.go) takes: the same
// options and flags, Complete, Validate, Config, New, Run.
package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/component-base/cli"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	cmd := &cobra.Command{
		Use:   "tollgate-test-apiserver",
		Short: "apiextensions-apiserver with CRD OpenAPI and /apis discovery (for tests)",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return o.ServerRunOptions.ComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return run(c.Context(), o)
		},
	}
	cmd.SetContext(ctx)
	o.AddFlags(cmd.Flags())
	os.Exit(cli.Run(cmd))
}

func run(ctx context.Context, o *options.CustomResourceDefinitionsServerOptions) error {
	config, err := o.Config()
	if err != nil {
		return err
	}

	// (1) OpenAPI v2, built exactly like the v3 config that options.Config() already sets.
	config.GenericConfig.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(
		openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions),
		openapinamer.NewDefinitionNamer(apiserver.Scheme, scheme.Scheme))
	config.GenericConfig.OpenAPIConfig.Info.Title = "tollgate-test-apiserver"
	config.GenericConfig.OpenAPIV3Config.Info.Title = "tollgate-test-apiserver"

	completed := config.Complete()
	// (2) Complete() has just set EnableDiscovery=false; serve /apis ourselves.
	completed.GenericConfig.EnableDiscovery = true

	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}
