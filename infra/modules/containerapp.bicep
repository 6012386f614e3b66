// The Container Apps environment and the callbridge app.

@description('Name of the Container Apps environment.')
param environmentName string

@description('Name of the container app (at most 32 characters).')
param appName string

@description('Region of both resources.')
param location string

@description('Tags applied to both resources.')
param tags object

@description('azd service name; azd finds the app by this tag.')
param serviceName string = 'callbridge'

@description('True once azd has deployed the app: keep its current image.')
param exists bool

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Client id of the same identity; DefaultAzureCredential reads it from AZURE_CLIENT_ID.')
param identityClientId string

@description('Login server of the registry the image comes from (pulled with the identity).')
param registryServer string

@description('Log Analytics workspace the environment sends logs to.')
param logAnalyticsName string

@description('Application Insights component the app sends telemetry to.')
param appInsightsName string

@description('Voice Live endpoint (AZURE_VOICE_LIVE_ENDPOINT).')
param voiceLiveEndpoint string

@description('Voice Live model (VOICE_LIVE_MODEL).')
param voiceLiveModel string = 'gpt-realtime'

@description('Voice Live voice (VOICE_LIVE_VOICE); empty keeps the app\'s default.')
param voiceLiveVoice string = ''

@description('Host name of the Communication Services resource.')
param acsHostName string

@description('Immutable resource id of the Communication Services resource (the audience of its JWTs).')
param acsImmutableResourceId string

@description('E.164 number outbound calls come from (ACS_CALLER_ID); empty leaves it unset.')
param acsCallerId string = ''

// 40: at 0.5-0.6 s of CPU per call-minute (callbridge bench, 20 to 40 calls), 40 calls keep the
// one event loop under half busy, the headroom pacing needs, with room for TLS and a slower core
// (docs/operating.md, "Sizing").
@minValue(1)
@description('Concurrent calls one replica accepts (CALLBRIDGE_MAX_CALLS); /readyz fails at this limit.')
param maxCallsPerReplica int = 40

@minValue(1)
@description('Replicas kept running at all times; at least 1, so an IncomingCall never waits for a cold start.')
param minReplicas int = 1

@minValue(1)
@description('Upper bound of the scale rule.')
param maxReplicas int = 10

@minValue(0)
@maxValue(570)
@description('Seconds a stopping replica lets its calls finish (CALLBRIDGE_DRAIN_S).')
param drainSeconds int = 120

@secure()
@minLength(32)
@description('Signs per-call media tokens (CALLBRIDGE_SIGNING_KEY).')
param signingKey string

@secure()
@minLength(32)
@description('Shared secret Event Grid sends in x-callbridge-secret (CALLBRIDGE_WEBHOOK_SECRET).')
param webhookSecret string

@secure()
@minLength(32)
@description('Key for POST /api/calls, header x-api-key (CALLBRIDGE_API_KEY).')
param apiKey string

// The app's listening port; ingress, probes and CALLBRIDGE_PORT all use it.
var port = 8000

// SIGKILL comes this long after SIGTERM: the drain budget plus a margin for hanging up the
// calls still up when it runs out and for closing their Voice Live sessions. With the
// maximum drain (570 s) this stays within Container Apps' 600 s limit.
var terminationGraceSeconds = drainSeconds + 30

// Scale rule: HTTP concurrency. Every live call holds one request open for its whole length
// (the ACS media WebSocket on /ws); webhooks and callbacks are short. So concurrent requests
// per replica track calls per replica, with no queue or external metric to run. Scale out at
// 80 % of the per-replica call limit, so new replicas are ready before /readyz starts
// refusing calls. Scaling in does not wait for open WebSockets: the drain budget and the
// termination grace period are what protect calls on a replica being removed.
var scaleAtConcurrentRequests = max(1, (maxCallsPerReplica * 4) / 5)

// The app's public URL, built from the environment's default domain and the app name rather
// than from the app itself, so the app can be given its own URL without a dependency cycle.
var publicUrl = 'https://${appName}.${managedEnvironment.properties.defaultDomain}'

// First provision: a public placeholder, replaced by `azd deploy`.
var placeholderImage = 'mcr.microsoft.com/azuredocs/containerapps-helloworld:latest'

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

module currentImage 'fetch-container-image.bicep' = {
  name: '${appName}-current-image'
  params: {
    exists: exists
    name: appName
  }
}

resource managedEnvironment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logAnalytics.properties.customerId
        sharedKey: logAnalytics.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

var requiredEnv = [
  {
    name: 'CALLBRIDGE_HOST'
    value: '0.0.0.0'
  }
  {
    name: 'CALLBRIDGE_PORT'
    value: string(port)
  }
  {
    name: 'CALLBRIDGE_PUBLIC_URL'
    value: publicUrl
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'AZURE_VOICE_LIVE_ENDPOINT'
    value: voiceLiveEndpoint
  }
  {
    name: 'VOICE_LIVE_MODEL'
    value: voiceLiveModel
  }
  {
    name: 'ACS_ENDPOINT'
    value: 'https://${acsHostName}'
  }
  {
    name: 'ACS_RESOURCE_ID'
    value: acsImmutableResourceId
  }
  {
    name: 'CALLBRIDGE_MAX_CALLS'
    value: string(maxCallsPerReplica)
  }
  {
    name: 'CALLBRIDGE_DRAIN_S'
    value: string(drainSeconds)
  }
  {
    name: 'LOG_FORMAT'
    value: 'json'
  }
  {
    name: 'OTEL_SERVICE_NAME'
    value: serviceName
  }
  {
    name: 'CALLBRIDGE_SIGNING_KEY'
    secretRef: 'signing-key'
  }
  {
    name: 'CALLBRIDGE_WEBHOOK_SECRET'
    secretRef: 'webhook-secret'
  }
  {
    name: 'CALLBRIDGE_API_KEY'
    secretRef: 'api-key'
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    secretRef: 'appinsights-connection-string'
  }
]

// Optional settings are left unset, not empty, when no value is given.
var optionalEnv = concat(
  empty(voiceLiveVoice) ? [] : [
    {
      name: 'VOICE_LIVE_VOICE'
      value: voiceLiveVoice
    }
  ],
  empty(acsCallerId) ? [] : [
    {
      name: 'ACS_CALLER_ID'
      value: acsCallerId
    }
  ]
)

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    managedEnvironmentId: managedEnvironment.id
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: port
        // auto carries HTTP/1.1 WebSocket upgrades (the ACS media stream on /ws).
        transport: 'auto'
        allowInsecure: false
      }
      registries: [
        {
          server: registryServer
          identity: identityId
        }
      ]
      secrets: [
        {
          name: 'signing-key'
          value: signingKey
        }
        {
          name: 'webhook-secret'
          value: webhookSecret
        }
        {
          name: 'api-key'
          value: apiKey
        }
        {
          name: 'appinsights-connection-string'
          value: appInsights.properties.ConnectionString
        }
      ]
    }
    template: {
      terminationGracePeriodSeconds: terminationGraceSeconds
      containers: [
        {
          name: serviceName
          image: exists ? currentImage.outputs.image : placeholderImage
          env: concat(requiredEnv, optionalEnv)
          // One vCPU: callbridge serves every call on one Python event loop, which uses one
          // core, so more would sit idle and less would starve the pacers. 2 GiB is what
          // Container Apps pairs with 1 vCPU; callbridge needs about 110 MB at 40 calls
          // (docs/operating.md, "Sizing with callbridge bench").
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
          probes: [
            {
              // Start-up: up to 2 + 10 x 3 s before liveness takes over.
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: port
              }
              initialDelaySeconds: 2
              periodSeconds: 3
              timeoutSeconds: 3
              failureThreshold: 10
            }
            {
              // Liveness: the process serves; restarting it drops its calls, so be patient.
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: port
              }
              periodSeconds: 10
              timeoutSeconds: 5
              failureThreshold: 3
            }
            {
              // Readiness: 503 while draining or at CALLBRIDGE_MAX_CALLS takes the replica
              // out of the load balancer without touching the calls it carries.
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: port
              }
              periodSeconds: 5
              timeoutSeconds: 3
              failureThreshold: 2
              successThreshold: 1
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        cooldownPeriod: 1800
        rules: [
          {
            name: 'concurrent-calls'
            http: {
              metadata: {
                concurrentRequests: string(scaleAtConcurrentRequests)
              }
            }
          }
        ]
      }
    }
  }
}

output name string = app.name
output environmentName string = managedEnvironment.name
output fqdn string = app.properties.configuration.ingress.fqdn
output url string = publicUrl
