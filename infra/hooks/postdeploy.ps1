#!/usr/bin/env pwsh
#Requires -Version 7.0
# azd postdeploy hook: subscribe the app's webhook to ACS IncomingCall events.
#
# Event Grid validates a webhook when its subscription is created or updated, so this runs after
# `azd deploy`, once the real app answers: it waits (bounded) for /healthz, then creates the
# subscription on the system topic main.bicep declares, or brings an existing one up to date.
# Safe to re-run: `azd hooks run postdeploy`.
#
# Subscription: endpoint https://<app>/api/incomingCall?secret=<secret>, event type
# Microsoft.Communication.IncomingCall, static secret header x-callbridge-secret, at most 2
# delivery attempts and a 1-minute event time-to-live (a late IncomingCall is useless: the caller
# has hung up). If CALLBRIDGE_PHONE_NUMBER is set in the azd environment (E.164, several
# separated by commas), only calls to those numbers are sent.
#
# The secret (the app's CALLBRIDGE_WEBHOOK_SECRET) goes both in the query string and in the
# header. Event Grid sends the URL's query parameters with every delivery, the validation
# handshake included, and keeps them encrypted; it does not document sending delivery headers
# with the handshake, and the app checks the secret on every request. The URL with the secret is
# never printed: messages show the endpoint without its query string.

$SubscriptionName = 'incoming-call'
$EventType = 'Microsoft.Communication.IncomingCall'
$SecretHeader = 'x-callbridge-secret'
$MaxDeliveryAttempts = 2
$EventTtlMinutes = 1
$HealthTimeoutS = if ($env:POSTDEPLOY_HEALTH_TIMEOUT_S) { [int]$env:POSTDEPLOY_HEALTH_TIMEOUT_S } else { 300 }
$HealthIntervalS = if ($env:POSTDEPLOY_HEALTH_INTERVAL_S) { [int]$env:POSTDEPLOY_HEALTH_INTERVAL_S } else { 5 }

function Stop-Hook([string] $Message) {
    [Console]::Error.WriteLine("postdeploy: $Message")
    exit 1
}

# A value of the azd environment: from the hook's environment (azd exports them), else from
# `azd env get-value` (when the script is run by hand).
function Get-EnvValue([string] $Name) {
    $value = [Environment]::GetEnvironmentVariable($Name)
    if ([string]::IsNullOrWhiteSpace($value)) {
        $value = (azd env get-value $Name 2>$null | Out-String).Trim()
        if ($LASTEXITCODE -ne 0) { $value = '' }
    }
    return "$value".Trim()
}

# An output of infra/main.bicep; missing means the environment was never provisioned.
function Get-RequiredOutput([string] $Name) {
    $value = Get-EnvValue $Name
    if (-not $value) { Stop-Hook "$Name is not set; run 'azd provision' first" }
    return $value
}

if (-not (Get-Command az -ErrorAction SilentlyContinue)) { Stop-Hook 'the Azure CLI (az) is not on PATH' }

$appUrl = (Get-RequiredOutput 'CALLBRIDGE_URL').TrimEnd('/')
$resourceGroup = Get-RequiredOutput 'AZURE_RESOURCE_GROUP'
$systemTopic = Get-RequiredOutput 'EVENTGRID_SYSTEM_TOPIC_NAME'
$subscriptionId = Get-EnvValue 'AZURE_SUBSCRIPTION_ID'
$secret = Get-EnvValue 'CALLBRIDGE_WEBHOOK_SECRET'
if ($secret.Length -lt 32) {
    Stop-Hook "CALLBRIDGE_WEBHOOK_SECRET is missing or shorter than 32 characters; run 'azd provision' (its preprovision hook generates it)"
}
# The secret goes into the URL as it is: the preprovision hook generates 64 hex characters, which
# need no percent-encoding. One set by hand must keep to URL-unreserved characters too (this also
# keeps '&' and '%' away from az.cmd's command line on Windows).
if ($secret -cnotmatch '\A[A-Za-z0-9._~-]+\z') {
    Stop-Hook "CALLBRIDGE_WEBHOOK_SECRET may only use letters, digits, '-', '_', '.' and '~' (it goes into the subscription's URL); clear it (azd env set CALLBRIDGE_WEBHOOK_SECRET '') and run 'azd up' to have one generated"
}

$phoneNumbers = @((Get-EnvValue 'CALLBRIDGE_PHONE_NUMBER') -split '[\s,;]+' | Where-Object { $_ })
foreach ($number in $phoneNumbers) {
    if ($number -notmatch '^\+[1-9][0-9]{6,}$') {
        Stop-Hook "CALLBRIDGE_PHONE_NUMBER: '$number' is not an E.164 number (+ and digits)"
    }
}

# What messages show; $deliveryUrl, with the secret, is only ever passed to az. (Braces: '?' may
# be part of a PowerShell variable name.)
$endpoint = "$appUrl/api/incomingCall"
$deliveryUrl = "${endpoint}?secret=${secret}"

az account show --output none 2>$null
if ($LASTEXITCODE -ne 0) { Stop-Hook "the Azure CLI is not signed in; run 'az login'" }

# 1. Wait until the app serves: Event Grid's validation handshake needs it.
Write-Host "postdeploy: waiting for $appUrl/healthz (up to ${HealthTimeoutS}s)"
$waited = 0
$step = [Math]::Max($HealthIntervalS, 1) # count at least 1 s per attempt, so the wait always ends
while ($true) {
    try {
        $response = Invoke-WebRequest -Uri "$appUrl/healthz" -TimeoutSec 5 -ErrorAction Stop
        if ($response.StatusCode -eq 200) { break }
    }
    catch {
        # Not up yet.
    }
    if ($waited -ge $HealthTimeoutS) {
        Stop-Hook "$appUrl/healthz did not answer within ${HealthTimeoutS}s; check the app's logs (az containerapp logs show), then re-run: azd hooks run postdeploy"
    }
    Start-Sleep -Seconds $HealthIntervalS
    $waited += $step
}

# 2. Create the subscription, or update it.
# Arguments naming this subscription. The CLI's `create` is a create-or-update (PUT) that sets
# every property; its `update` keeps the retry policy and any filter it is not given.
$target = @(
    '--resource-group', $resourceGroup,
    '--system-topic-name', $systemTopic,
    '--name', $SubscriptionName,
    '--only-show-errors'
)
if ($subscriptionId) { $target += @('--subscription', $subscriptionId) }

# Run create or update with the full desired configuration.
function Invoke-Subscribe([string] $Action) {
    $arguments = @(
        'eventgrid', 'system-topic', 'event-subscription', $Action
    ) + $target + @(
        '--endpoint', $deliveryUrl,
        '--endpoint-type', 'webhook',
        '--included-event-types', $EventType,
        '--delivery-attribute-mapping', $SecretHeader, 'static', $secret, 'true'
    )
    if ($Action -eq 'create') {
        $arguments += @(
            '--event-delivery-schema', 'eventgridschema',
            '--max-delivery-attempts', "$MaxDeliveryAttempts",
            '--event-ttl', "$EventTtlMinutes"
        )
    }
    if ($phoneNumbers.Count -gt 0) {
        $arguments += @('--advanced-filter', 'data.to.PhoneNumber.Value', 'StringIn') + $phoneNumbers
    }
    az @arguments --output none
    if ($LASTEXITCODE -ne 0) {
        Stop-Hook "could not $Action the Event Grid subscription (Event Grid must reach $endpoint); re-run: azd hooks run postdeploy"
    }
}

$existing = az eventgrid system-topic event-subscription show @target --output json 2>$null
if ($LASTEXITCODE -eq 0 -and $existing) {
    $current = ($existing | Out-String) | ConvertFrom-Json
    $attempts = $current.retryPolicy.maxDeliveryAttempts
    $ttl = $current.retryPolicy.eventTimeToLiveInMinutes
    $filters = if ($current.filter -and $current.filter.advancedFilters) { @($current.filter.advancedFilters).Count } else { 0 }
    if ($attempts -ne $MaxDeliveryAttempts -or $ttl -ne $EventTtlMinutes) {
        Write-Host "postdeploy: retry policy is $attempts attempts / $ttl min; replacing it"
        Invoke-Subscribe 'create'
    }
    elseif ($phoneNumbers.Count -eq 0 -and $filters -ne 0) {
        Write-Host 'postdeploy: CALLBRIDGE_PHONE_NUMBER is unset; removing the number filter'
        Invoke-Subscribe 'create'
    }
    else {
        Invoke-Subscribe 'update'
    }
    Write-Host "postdeploy: Event Grid subscription '$SubscriptionName' updated"
}
else {
    Invoke-Subscribe 'create'
    Write-Host "postdeploy: Event Grid subscription '$SubscriptionName' created"
}

$numbers = if ($phoneNumbers.Count -gt 0) { $phoneNumbers -join ' ' } else { 'every number of the resource' }
Write-Host "postdeploy: IncomingCall events for $numbers go to $endpoint"
