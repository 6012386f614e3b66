// callbridge on Azure: Communication Services answers the phone, a Container App bridges each
// call to Voice Live on an AI Services account. Deployed with `azd up` (see azure.yaml).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it names the resource group and tags everything.')
param environmentName string

@minLength(1)
@description('Region of the regional resources. Pick one where Voice Live serves the model, or set aiServicesLocation.')
param location string

@description('Region of the AI Services account (Voice Live); empty means location.')
param aiServicesLocation string = ''

@description('Where Communication Services stores its data at rest.')
param acsDataLocation string = 'United States'

@description('True once azd has deployed the app (SERVICE_CALLBRIDGE_RESOURCE_EXISTS); provisioning then keeps its image.')
param callbridgeExists bool = false

@description('Voice Live model (VOICE_LIVE_MODEL).')
param voiceLiveModel string = 'gpt-realtime'

@description('Voice Live voice (VOICE_LIVE_VOICE); empty keeps the app\'s default HD voice, or gives en-US-AvaNeural where the AI Services region has no HD voices.')
param voiceLiveVoice string = ''

@description('E.164 number outbound calls come from (ACS_CALLER_ID); empty leaves outbound calling unconfigured.')
param acsCallerId string = ''

@minValue(1)
@description('Concurrent calls one replica accepts (CALLBRIDGE_MAX_CALLS).')
param maxCallsPerReplica int = 40

@minValue(1)
@description('Replicas always running; at least 1 so IncomingCall never waits for a cold start.')
param minReplicas int = 1

@minValue(1)
@description('Most replicas the scale rule may run.')
param maxReplicas int = 10

@minValue(0)
@maxValue(570)
@description('Seconds a stopping replica lets its calls finish (CALLBRIDGE_DRAIN_S); the termination grace period adds a margin.')
param drainSeconds int = 120

@description('Also grant the Communication Services resource\'s own identity Cognitive Services User on the AI Services account (only for ACS-side AI features).')
param grantAcsAiServicesAccess bool = false

@secure()
@minLength(32)
@description('CALLBRIDGE_SIGNING_KEY; infra/hooks/preprovision.* generates it once per environment.')
param callbridgeSigningKey string

@secure()
@minLength(32)
@description('CALLBRIDGE_WEBHOOK_SECRET; also the x-callbridge-secret header of the Event Grid subscription.')
param callbridgeWebhookSecret string

@secure()
@minLength(32)
@description('CALLBRIDGE_API_KEY, for POST /api/calls.')
param callbridgeApiKey string

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var serviceName = 'callbridge'
var appName = 'ca-${serviceName}-${resourceToken}'
var aiServicesRegion = empty(aiServicesLocation) ? location : aiServicesLocation

// Azure HD voices (names with "DragonHD", like the app's default) work only in some regions.
// The Voice Live how-to (MicrosoftDocs/azure-ai-docs,
// articles/ai-services/speech-service/voice-live-how-to.md): "High definition voices are
// currently supported in the following regions only: southeastasia, centralindia,
// swedencentral, westeurope, eastus, eastus2, westus2". The Speech regions page also ticks
// canadacentral and francecentral; only the seven both sources agree on are used here.
var hdVoiceRegions = [
  'southeastasia'
  'centralindia'
  'swedencentral'
  'westeurope'
  'eastus'
  'eastus2'
  'westus2'
]
var hdVoicesAvailable = contains(hdVoiceRegions, toLower(replace(aiServicesRegion, ' ', '')))
// The app's default voice (DEFAULT_VOICE in callbridge/core/profiles.py), an HD voice, and the
// standard Ava voice that replaces it where HD voices are not offered.
var appDefaultVoice = 'en-US-Ava:DragonHDLatestNeural'
var standardVoice = 'en-US-AvaNeural'
var voiceIsHd = contains(toLower(empty(voiceLiveVoice) ? appDefaultVoice : voiceLiveVoice), 'dragonhd')
// VOICE_LIVE_VOICE for the app ('' keeps its default). Outside the HD regions an HD voice
// would fail the agent's first call, so there the app's default becomes the standard voice, and
// an HD voice set on purpose stops the deployment. It depends on parameters only, so ARM can
// evaluate it, and fail(), before creating anything.
var hdVoiceError = 'VOICE_LIVE_VOICE=${voiceLiveVoice} is an HD voice, and HD voices are not offered in ${aiServicesRegion}, the region of the AI Services account. Set a standard voice (such as ${standardVoice}), or set AZURE_AI_SERVICES_LOCATION to one of: ${join(hdVoiceRegions, ', ')}.'
var appVoice = (hdVoicesAvailable || !voiceIsHd) ? voiceLiveVoice : (empty(voiceLiveVoice) ? standardVoice : fail(hdVoiceError))

resource rg 'Microsoft.Resources/resourceGroups@2024-11-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${serviceName}-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    name: 'cr${resourceToken}'
    location: location
    tags: tags
    pullPrincipalId: identity.outputs.principalId
  }
}

module communication 'modules/communication.bicep' = {
  name: 'communication'
  scope: rg
  params: {
    name: 'acs-${resourceToken}'
    dataLocation: acsDataLocation
    systemTopicName: 'evgt-acs-${resourceToken}'
    tags: tags
    appPrincipalId: identity.outputs.principalId
  }
}

module aiServices 'modules/aiservices.bicep' = {
  name: 'ai-services'
  scope: rg
  params: {
    name: 'ais-${resourceToken}'
    location: aiServicesRegion
    tags: tags
    appPrincipalId: identity.outputs.principalId
    acsPrincipalId: grantAcsAiServicesAccess ? communication.outputs.principalId : ''
  }
}

// Every module the app depends on is referenced through its outputs, so the app is created
// after its identity holds AcrPull, Cognitive Services User, Foundry User and the ACS role.
module app 'modules/containerapp.bicep' = {
  name: 'container-app'
  scope: rg
  params: {
    environmentName: 'cae-${resourceToken}'
    appName: appName
    location: location
    tags: tags
    serviceName: serviceName
    exists: callbridgeExists
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    registryServer: registry.outputs.loginServer
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    appInsightsName: monitoring.outputs.appInsightsName
    voiceLiveEndpoint: aiServices.outputs.endpoint
    voiceLiveModel: voiceLiveModel
    voiceLiveVoice: appVoice
    acsHostName: communication.outputs.hostName
    acsImmutableResourceId: communication.outputs.immutableResourceId
    acsCallerId: acsCallerId
    maxCallsPerReplica: maxCallsPerReplica
    minReplicas: minReplicas
    maxReplicas: maxReplicas
    drainSeconds: drainSeconds
    signingKey: callbridgeSigningKey
    webhookSecret: callbridgeWebhookSecret
    apiKey: callbridgeApiKey
  }
}

// Outputs become azd environment values (`azd env get-values`); the hooks read some of them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output AZURE_CONTAINER_ENVIRONMENT_NAME string = app.outputs.environmentName
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_VOICE_LIVE_ENDPOINT string = aiServices.outputs.endpoint
// The voice the app speaks with: shows when the standard voice replaced the HD default.
output VOICE_LIVE_VOICE_DEPLOYED string = empty(appVoice) ? appDefaultVoice : appVoice
output ACS_NAME string = communication.outputs.name
output ACS_ENDPOINT string = 'https://${communication.outputs.hostName}'
output ACS_RESOURCE_ID string = communication.outputs.immutableResourceId
output EVENTGRID_SYSTEM_TOPIC_NAME string = communication.outputs.systemTopicName
output SERVICE_CALLBRIDGE_NAME string = app.outputs.name
output CALLBRIDGE_URL string = app.outputs.url
