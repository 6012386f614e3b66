// Azure Communication Services, its Event Grid system topic, and the app identity's role on it.
// The IncomingCall subscription is not declared here: Event Grid validates a webhook when the
// subscription is created, so infra/hooks/postdeploy.* creates it once the real app answers.

@description('Name of the Communication Services resource (globally unique).')
param name string

@description('Where ACS stores its data at rest.')
param dataLocation string

@description('Name of the Event Grid system topic on the resource.')
param systemTopicName string

@description('Tags applied to both resources.')
param tags object

@description('Principal id of the app\'s user-assigned identity (Call Automation with Entra ID).')
param appPrincipalId string

// Built-in role: Communication and Email Service Owner. Call Automation authenticated with
// Entra ID (CallAutomationClient(endpoint, credential)) needs a role with the ACS data actions;
// this is the narrowest built-in one (the ACS quickstart uses Contributor).
var communicationOwnerRoleId = '09976791-48a7-449e-bb21-39d1a415f350'

resource acs 'Microsoft.Communication/communicationServices@2025-05-01' = {
  name: name
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    dataLocation: dataLocation
  }
}

// One system topic per source resource: declaring it here keeps the CLI from creating a randomly
// named one when the subscription is added.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: systemTopicName
  location: 'global'
  tags: tags
  properties: {
    source: acs.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

resource appUsesCallAutomation 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acs.id, appPrincipalId, communicationOwnerRoleId)
  scope: acs
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', communicationOwnerRoleId)
  }
}

output name string = acs.name
output hostName string = acs.properties.hostName
output immutableResourceId string = acs.properties.immutableResourceId
output principalId string = acs.identity.principalId
output systemTopicName string = systemTopic.name
